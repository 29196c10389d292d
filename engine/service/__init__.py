"""`journey serve`: the HTTP service that takes events in, proves who sent them and relays them to journeys."""
