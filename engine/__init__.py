"""Account journeys on Temporal: the journey language, its compiler and the runtime around it."""
