"""Opening what a command works on: the project, and its database."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from hindsight_migrate.alembic_api import AlembicProject
    from hindsight_migrate.config import Settings
    from hindsight_migrate.postgres.database import Database

from hindsight_migrate.cli.options import GlobalOptions

T = TypeVar("T")


def open_project(options: GlobalOptions) -> tuple[Settings, AlembicProject]:
    from hindsight_migrate.alembic_api import AlembicProject
    from hindsight_migrate.config import resolve_settings

    settings = resolve_settings(
        config_path=options.config,
        url=options.url,
        ini_section=options.name or "alembic",
        verbose=options.verbose or options.debug,
    )
    return settings, AlembicProject(settings)


def with_database(options: GlobalOptions, read: Callable[[AlembicProject, Database], T]) -> T:
    """Open the project and its database, run ``read``, and always release the database."""
    _, project, database = open_all(options)
    try:
        return read(project, database)
    finally:
        database.dispose()


def open_all(options: GlobalOptions) -> tuple[Settings, AlembicProject, Database]:
    from hindsight_migrate import render
    from hindsight_migrate.postgres.database import open_database

    settings, project = open_project(options)
    render.announce_database(settings)  # stderr: --json output on stdout stays clean
    database = open_database(settings.database)
    # env.py is handed this database, and may ask for no other (the embedded server's URL is known only now).
    project.bind_target(database.engine.url, settings.database.origin)
    return settings, project, database
