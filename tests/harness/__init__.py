"""The suite's harness: projects written to disk, processes, gates, roles, the database's state, audit rows,
the kill trials."""
