"""history (and its graph cache)."""
