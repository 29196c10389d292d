"""The workflows that walk a Plan (the journey interpreter, the audience launcher, the score job), their
state, operator updates and what the Temporal UI shows, and the contracts they share with activities.
Deterministic: no I/O, no clock, no randomness; every effect is an activity."""
