"""Every setting of a command, resolved once: the files, the tool's settings, the database."""

from __future__ import annotations

from pathlib import Path

from hindsight_migrate.config.files import check_layout, find_configuration, refuse_multidb
from hindsight_migrate.config.settings import (
    DEFAULT_SECTION,
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
) -> Settings:
    """Find and read alembic.ini and/or pyproject.toml, and the environment; never touches the database."""
    forget_secrets()
    here = (cwd or Path.cwd()).resolve()
    ini, toml = find_configuration(config_path, here)
    check_layout(ini, toml, ini_section)
    if ini is not None:
        refuse_multidb(ini, ini_section)
    table = tool_table(ini, toml)
    bootstrap_sql, baseline, tool_settings = (
        settings_from(table) if table is not None else (None, None, ToolSettings())
    )
    config_file = ini.path if ini is not None else present(toml).path
    project_dir = config_file.parent

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
    )
