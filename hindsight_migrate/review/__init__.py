"""up, down and bootstrap: the plan, its rehearsal and lint, its summary, saved plans, and the apply."""
