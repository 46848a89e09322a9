"""Alembic environment for the Hindsight service database.

Three ways in:

* hindsight-migrate (or any caller) hands over an open SQLAlchemy Connection
  in ``config.attributes["connection"]``; it is used as-is.
* Plain ``alembic`` CLI: an engine is built from ``sqlalchemy.url`` or, when
  that is empty (the committed default), from ``DATABASE_URL``.
* Offline (``--sql``): SQL is rendered for the PostgreSQL dialect, no database.
"""

from __future__ import annotations

import os
import sys
from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlalchemy.engine import Connection, Engine

# Make `migrations.models` importable whatever the current directory is
# (prepend_sys_path in alembic.ini only helps when that ini file is used).
_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
if _PROJECT_ROOT not in sys.path:
    sys.path.insert(0, _PROJECT_ROOT)

from migrations.models import Base  # noqa: E402

config = context.config

# A caller that manages logging itself (hindsight-migrate) sets
# configure_logger=False so its own handlers are not replaced.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)

target_metadata = Base.metadata

# Autogenerate options used in every context.configure() call below:
# compare_type=True so type changes (e.g. integer -> bigint) are detected;
# compare_server_default=False because reflected default text differs
# cosmetically from the models' and would give false positives.
# include_schemas is deliberately not set: only the default schema is
# compared, so hindsight-migrate's own "hindsight_migrate" schema stays out.

_OFFLINE_FALLBACK_URL = "postgresql+psycopg://"


def _normalize_url(url: str) -> str:
    """Force the psycopg 3 driver for bare postgres:// / postgresql:// URLs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _configured_url() -> str | None:
    """sqlalchemy.url if set, else DATABASE_URL, else None."""
    url = (config.get_main_option("sqlalchemy.url") or "").strip()
    if not url:
        url = os.environ.get("DATABASE_URL", "").strip()
    return _normalize_url(url) if url else None


def run_migrations_offline() -> None:
    """Emit SQL to stdout; only the dialect matters, so no real URL is needed."""
    context.configure(
        url=_configured_url() or _OFFLINE_FALLBACK_URL,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_with_connection(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against a live database."""
    connectable = config.attributes.get("connection")
    if isinstance(connectable, Engine):
        # pytest-alembic hands over an Engine: connect with it, as the CLI path does.
        with connectable.connect() as connection:
            _run_with_connection(connection)
        return
    if connectable is not None:
        # Caller-owned connection (hindsight-migrate), possibly already inside its transaction:
        # never close or commit it here, the caller decides.
        _run_with_connection(connectable)
        return

    url = _configured_url()
    if url is None:
        raise RuntimeError("No database URL: set DATABASE_URL (or sqlalchemy.url in alembic.ini).")
    # NullPool: a one-shot CLI run should not keep pooled connections around.
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
        url=url,
    )
    try:
        with connectable.connect() as connection:
            _run_with_connection(connection)
    finally:
        connectable.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
