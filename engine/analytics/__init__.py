"""Account analytics over the event log: canvas, cohort, flow, node counts and the account timeline."""
