"""The command line: the only package that imports Typer."""

from hindsight_migrate.cli.app import app, main

__all__ = ["app", "main"]
