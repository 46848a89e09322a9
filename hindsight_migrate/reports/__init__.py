"""Read-only reports: history (and its graph cache), status, check."""
