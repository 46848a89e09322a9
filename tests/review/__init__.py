"""up, down and bootstrap: the plan, the review, the apply."""
