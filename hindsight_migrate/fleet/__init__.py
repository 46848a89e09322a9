"""One reviewed plan, many databases: the targets of a fleet, their preflight, the rollout and its ledger.

Alembic's ``context`` is one per process, so env.py cannot run for two targets at once in threads: the
rollout runs targets in worker processes (each migrating many targets in turn, reusing its imports and the
revision graph), and the read-only preflight reads every target in threads over plain connections.
"""
