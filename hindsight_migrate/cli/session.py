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
    if settings.database.ask_env_py:
        settings, project = _database_env_py_names(settings, project)
    render.announce_database(settings)  # stderr: --json output on stdout stays clean
    database = open_database(settings.database)
    # env.py is handed this database, and may ask for no other (the embedded server's URL is known only now).
    project.bind_target(database.engine.url, settings.database.origin)
    return settings, project, database


def _database_env_py_names(settings: Settings, project: AlembicProject) -> tuple[Settings, AlembicProject]:
    """Nobody named a database: the one env.py connects to (as raw ``alembic upgrade`` would), if it names one.

    Asked before the embedded server starts, so that it starts (and its folder is made) only for a
    project whose env.py names no database either.
    """
    from dataclasses import replace

    from hindsight_migrate.alembic_api import AlembicProject
    from hindsight_migrate.config import from_env_py

    env_py = project.env.env_py
    source = from_env_py(settings.database, project.env.url_env_py_asks_for(), str(project.relative(env_py)))
    if source is settings.database:
        return settings, project
    settings = replace(settings, database=source)
    return settings, AlembicProject(settings)
