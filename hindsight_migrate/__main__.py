"""``python -m hindsight_migrate``: the same as the ``hindsight-migrate`` command."""

from hindsight_migrate.cli import main

main()
