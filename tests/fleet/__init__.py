"""fleet plan, up and status over many databases: targets files, the rollout's error budget, kills, races
and shards, on real PostgreSQL."""
