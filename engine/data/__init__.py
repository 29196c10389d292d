"""A team's own data in: accounts, people and opportunities read, validated and upserted in bulk."""
