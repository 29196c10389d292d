"""`journey dev`, the embedded stack of `make run`: dev server, worker, events service, stand-in services,
demo data and the handoff demo."""
