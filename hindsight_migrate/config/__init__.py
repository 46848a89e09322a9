"""Where every setting comes from, resolved once per command.

The configuration files, found as Alembic finds them:

- no ``-c``: ``./alembic.ini`` and/or ``./pyproject.toml`` with a ``[tool.alembic]`` table;
- ``-c PATH`` to a ``pyproject.toml``: that file, and the ``alembic.ini`` beside it if there is one;
- ``-c PATH`` to anything else: that ini file, and a ``pyproject.toml`` beside it with ``[tool.alembic]``.

``script_location`` must be in the ini's section (``-n``, ``[alembic]`` by default) or in
``[tool.alembic]``; Alembic itself reads the rest of both files.

Order for the database URL (the first that is set wins):

1. ``--url``
2. ``DATABASE_URL`` in the environment
3. ``DATABASE_URL`` in a ``.env`` file found from the current directory upwards
4. ``sqlalchemy.url`` in the ini's section (with no ini: in ``[tool.alembic]``)
5. nothing: the embedded PostgreSQL server under ``<project>/.hindsight/pgdata``

Tool settings live in the ``[hindsight-migrate]`` section of the ini file or in the
``[tool.hindsight-migrate]`` table of pyproject.toml (not both); paths in them are relative to
the folder of the file that holds them, like Alembic's own ``%(here)s``.
"""

from hindsight_migrate.config.resolve import resolve_settings
from hindsight_migrate.config.settings import (
    DEFAULT_INI,
    DEFAULT_SECTION,
    EMBEDDED_DATA_DIR,
    PYPROJECT,
    TOOL_SECTION,
    DatabaseSource,
    Settings,
    ToolSettings,
)
from hindsight_migrate.config.urls import from_env_py, normalize_url

__all__ = [
    "DEFAULT_INI",
    "DEFAULT_SECTION",
    "EMBEDDED_DATA_DIR",
    "PYPROJECT",
    "TOOL_SECTION",
    "DatabaseSource",
    "Settings",
    "ToolSettings",
    "from_env_py",
    "normalize_url",
    "resolve_settings",
]
