"""Alembic projects the benchmark generates on disk: one project, driven by both tools.

Every project has the same ``env.py``: it uses the connection hindsight-migrate hands it in
``config.attributes["connection"]`` and, for the plain ``alembic`` CLI, builds an engine from
``-x url=...`` (or ``sqlalchemy.url``). Its ``alembic.ini`` has no ``[hindsight-migrate]``
``bootstrap_sql``, so ``up`` on an empty database upgrades from base, as ``alembic upgrade head``
does; and the logging sections ``alembic init`` writes, so raw alembic logs as it does out of the box.
"""

from __future__ import annotations

import hashlib
import shutil
import textwrap
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

ENV_PY = '''\
"""Benchmark env.py: the connection hindsight-migrate hands over, or -x url=... for plain alembic."""
from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)
target_metadata = None


def database_url() -> str:
    return context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url") or ""


def run_offline() -> None:
    context.configure(url=database_url() or "postgresql+psycopg://", literal_binds=True,
                      target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_with(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # hindsight-migrate
        run_with(connection)
        return
    engine = engine_from_config(config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.",
                                poolclass=pool.NullPool, url=database_url())
    try:
        with engine.connect() as connection:
            run_with(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
'''

ALEMBIC_INI = """\
[alembic]
script_location = %(here)s/migrations
path_separator = os
# Left empty: the benchmark passes the database with -x url=... (alembic) or --url (hindsight-migrate).
sqlalchemy.url =

[hindsight-migrate]
# No bootstrap_sql: there is no V1, so `up` on an empty database upgrades from base.

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""


@dataclass(frozen=True)
class Rev:
    """One revision file: its id, its parents, and the table it creates (None for a merge)."""

    revision: str
    parents: tuple[str, ...]
    table: str | None
    message: str


@dataclass(frozen=True)
class Chain:
    """A generated chain, for the report."""

    revisions: tuple[Rev, ...]

    @property
    def size(self) -> int:
        return len(self.revisions)

    @property
    def merges(self) -> int:
        return sum(1 for rev in self.revisions if len(rev.parents) > 1)

    @property
    def branch_points(self) -> int:
        children: dict[str, int] = {}
        for rev in self.revisions:
            for parent in rev.parents:
                children[parent] = children.get(parent, 0) + 1
        return sum(1 for count in children.values() if count > 1)


def revision_id(label: str, index: int) -> str:
    """A 12-hex-digit id like Alembic's, deterministic for a chain's label and position."""
    return hashlib.sha1(f"{label}:{index}".encode()).hexdigest()[:12]


def make_chain(size: int, *, label: str, branch_every: int = 0) -> Chain:
    """``size`` revisions; every ``branch_every`` revisions (0: never) a branch point with two
    parallel revisions and the merge that joins them. Every revision but a merge creates a table."""
    revisions: list[Rev] = []
    head: tuple[str, ...] = ()
    since_branch = 0
    table_number = 0

    def add(parents: tuple[str, ...], *, merge: bool = False) -> str:
        nonlocal table_number
        rev_id = revision_id(label, len(revisions))
        if merge:
            revisions.append(Rev(rev_id, parents, None, "merge the two branches"))
        else:
            table_number += 1
            table = f"t_{table_number}"
            revisions.append(Rev(rev_id, parents, table, f"create table {table}"))
        return rev_id

    while len(revisions) < size:
        room = size - len(revisions)
        if branch_every and head and since_branch >= branch_every - 3 and room >= 3:
            left = add(head)
            right = add(head)
            head = (add((left, right), merge=True),)
            since_branch = 0
        else:
            head = (add(head),)
            since_branch += 1
    ids = [rev.revision for rev in revisions]
    assert len(set(ids)) == len(ids), "revision ids collide"
    return Chain(tuple(revisions))


def revision_source(rev: Rev, created: datetime) -> str:
    if not rev.parents:
        down = "None"
    elif len(rev.parents) == 1:
        down = repr(rev.parents[0])
    else:
        down = repr(rev.parents)
    if rev.table is None:
        upgrade, downgrade = "pass", "pass"
    else:
        upgrade = f'op.execute("CREATE TABLE {rev.table} (id int)")'
        downgrade = f'op.execute("DROP TABLE {rev.table}")'
    return textwrap.dedent(
        f'''\
        """{rev.message}

        Revision ID: {rev.revision}
        Revises: {", ".join(rev.parents)}
        Create Date: {created:%Y-%m-%d %H:%M:%S.%f}

        """
        from alembic import op

        revision = {rev.revision!r}
        down_revision = {down}
        branch_labels = None
        depends_on = None


        def upgrade() -> None:
            {upgrade}


        def downgrade() -> None:
            {downgrade}
        '''
    )


def write_project(folder: Path, chain: Chain, *, transaction_per_migration: bool = False) -> Path:
    """Write alembic.ini, migrations/env.py and one file per revision; return the ini's path.

    ``transaction_per_migration``: plain alembic commits each revision on its own, as
    hindsight-migrate always does (Alembic's default is one transaction for the whole run).
    """
    versions = folder / "migrations" / "versions"
    versions.mkdir(parents=True)
    (folder / "alembic.ini").write_text(ALEMBIC_INI)
    env_py = ENV_PY
    if transaction_per_migration:
        plain = "context.configure(connection=connection, target_metadata=target_metadata)"
        env_py = env_py.replace(plain, plain[:-1] + ", transaction_per_migration=True)")
        assert env_py != ENV_PY
    (folder / "migrations" / "env.py").write_text(env_py)
    (folder / "migrations" / "script.py.mako").write_text("# not used by the benchmark\n")
    start = datetime(2026, 1, 1, 12, 0, 0)
    for position, rev in enumerate(chain.revisions):
        slug = rev.message.replace(" ", "_")
        path = versions / f"{rev.revision}_{slug}.py"
        path.write_text(revision_source(rev, start + timedelta(hours=position)))
    return folder / "alembic.ini"


def copy_hindsight_project(repo: Path, folder: Path) -> Path:
    """Hindsight's own chain: the repository's alembic.ini, migrations/ and infra/, copied."""
    folder.mkdir(parents=True)
    shutil.copy2(repo / "alembic.ini", folder / "alembic.ini")
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(repo / "migrations", folder / "migrations", ignore=ignore)
    shutil.copytree(repo / "infra", folder / "infra", ignore=ignore)
    return folder / "alembic.ini"
