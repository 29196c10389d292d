"""Activities: every effect a journey has on the world (database, email, outside services)."""
