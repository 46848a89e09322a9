"""Every setting of a command, resolved once: the files, the tool's settings, the database."""

from __future__ import annotations

import os
from pathlib import Path

from hindsight_migrate.config.files import (
    check_layout,
    find_configuration,
    is_flask_migrate,
    multidb_databases,
    refuse_multidb,
)
from hindsight_migrate.config.settings import (
    DEFAULT_SECTION,
    FlaskProject,
    Settings,
    ToolSettings,
    present,
    settings_from,
    tool_table,
)
from hindsight_migrate.config.urls import resolve_database
from hindsight_migrate.masking import forget_secrets


def resolve_settings(
    *,
    config_path: Path | None,
    url: str | None,
    cwd: Path | None = None,
    ini_section: str = DEFAULT_SECTION,
    verbose: bool = False,
    allow_multidb: bool = False,
) -> Settings:
    """Find and read alembic.ini and/or pyproject.toml, and the environment; never touches the database."""
    forget_secrets()
    here = (cwd or Path.cwd()).resolve()
    ini, toml = find_configuration(config_path, here)
    check_layout(ini, toml, ini_section)
    multidb: tuple[tuple[str, str], ...] = ()
    if ini is not None:
        # Only a fleet runs a multidb project: one database per run, each reviewed and applied on its own.
        if allow_multidb:
            multidb = multidb_databases(ini, ini_section)
        else:
            refuse_multidb(ini, ini_section)
    table = tool_table(ini, toml)
    bootstrap_sql, baseline, tool_settings = (
        settings_from(table) if table is not None else (None, None, ToolSettings())
    )
    config_file = ini.path if ini is not None else present(toml).path
    project_dir = config_file.parent
    flask = (
        FlaskProject(app=flask_app_named(here), folder=here, migrations=ini.path.parent)
        if ini is not None and is_flask_migrate(ini.path.parent)
        else None
    )

    return Settings(
        ini_path=ini.path if ini is not None else None,
        toml_path=toml.path if toml is not None else None,
        project_dir=project_dir,
        ini_section=ini_section,
        database=resolve_database(url, here, ini, toml, ini_section, project_dir),
        bootstrap_sql=bootstrap_sql,
        baseline=baseline,
        tool=tool_settings,
        verbose=verbose,
        flask=flask,
        multidb=multidb,
    )


def flask_app_named(here: Path) -> str | None:
    """The Flask app as ``flask`` finds it: FLASK_APP from the environment, .flaskenv or .env (which
    Flask's command loads); None leaves the search (app.py, wsgi.py) to Flask."""
    if os.environ.get("FLASK_APP"):
        return os.environ["FLASK_APP"]
    from dotenv import dotenv_values

    for name in (".flaskenv", ".env"):
        path = here / name
        if path.is_file():
            value = dotenv_values(path).get("FLASK_APP")
            if value:
                return value
    return None
