"""Running journeys on Temporal from the outside: connecting, publishing (audience, starts, launcher),
recording and delivering events, operator actions, and assembling a worker."""
