"""`journey simulate`: the real journey workflow on Temporal's time-skipping server, with every effect simulated."""
