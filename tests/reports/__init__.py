"""history (and its graph cache), status, check and lint: what the project and the database say, changing nothing."""
