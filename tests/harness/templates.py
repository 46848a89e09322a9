"""Alembic projects exactly as ``alembic init -t TEMPLATE`` makes them, and raw Alembic to compare with.

``init_project(folder, "async")`` runs the real ``alembic init`` (Alembic's own templates, env.py,
script.py.mako and config untouched) and adds three revisions rendered through the project's own
script.py.mako, the way ``alembic revision`` writes them. ``raw_alembic`` runs the ``alembic``
command on a copy of the project whose alembic.ini names the database (a stock env.py reads the
URL from there only); ``schema_of`` describes a database's schema for comparing the two.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.engine import make_url

from tests.harness.dbstate import alembic_version, query

TEMPLATES = ("generic", "async", "pyproject", "pyproject_async")
ASYNC_TEMPLATES = frozenset({"async", "pyproject_async"})
PYPROJECT_TEMPLATES = frozenset({"pyproject", "pyproject_async"})
# What `alembic init` writes into alembic.ini: not a database, a placeholder to replace.
PLACEHOLDER_URL = "driver://user:pass@localhost/dbname"

R1 = "a10000000001"  # creates widgets(id, name)
R2 = "a10000000002"  # adds widgets.color and an index on it
R3 = "a10000000003"  # creates gadgets, with a foreign key to widgets
REVISIONS = (R1, R2, R3)
TOOL_SCHEMA = "hindsight_migrate"

# (revision, message, upgrade operations, downgrade operations), in the order they run.
_CHAIN: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        R1,
        "create widgets",
        (
            "op.create_table(",
            '    "widgets",',
            '    sa.Column("id", sa.Integer(), nullable=False),',
            '    sa.Column("name", sa.Text(), nullable=False),',
            '    sa.PrimaryKeyConstraint("id"),',
            ")",
        ),
        ('op.drop_table("widgets")',),
    ),
    (
        R2,
        "add widgets color",
        (
            'op.add_column("widgets", sa.Column("color", sa.Text(), nullable=True))',
            'op.create_index("ix_widgets_color", "widgets", ["color"], unique=False)',
        ),
        (
            'op.drop_index("ix_widgets_color", table_name="widgets")',
            'op.drop_column("widgets", "color")',
        ),
    ),
    (
        R3,
        "create gadgets",
        (
            "op.create_table(",
            '    "gadgets",',
            '    sa.Column("id", sa.Integer(), nullable=False),',
            '    sa.Column("widget_id", sa.Integer(), nullable=False),',
            '    sa.Column("label", sa.Text(), server_default="new", nullable=False),',
            '    sa.ForeignKeyConstraint(["widget_id"], ["widgets.id"], ondelete="CASCADE"),',
            '    sa.PrimaryKeyConstraint("id"),',
            ")",
            'op.create_index("ix_gadgets_widget_id", "gadgets", ["widget_id"], unique=False)',
        ),
        (
            'op.drop_index("ix_gadgets_widget_id", table_name="gadgets")',
            'op.drop_table("gadgets")',
        ),
    ),
)


def init_project(
    folder: Path,
    template: str,
    *,
    config: Literal["alembic.ini", "pyproject.toml"] = "alembic.ini",
    revisions: bool = True,
) -> Path:
    """``alembic init -t TEMPLATE migrations`` in ``folder``, plus R1..R3; return the path for ``-c``.

    ``config="pyproject.toml"`` returns the pyproject.toml of a pyproject template instead of its
    alembic.ini (both exist: [tool.alembic] in the first, sqlalchemy.url and logging in the second).
    """
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "init", "-t", template, "migrations"],
        cwd=folder,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"alembic init -t {template} failed:\n{done.stdout}\n{done.stderr}"
    ini = folder / "alembic.ini"
    assert ini.is_file(), f"alembic init -t {template} wrote no alembic.ini"
    assert PLACEHOLDER_URL in ini.read_text(), "alembic init no longer writes the placeholder URL"
    if config == "pyproject.toml":
        assert template in PYPROJECT_TEMPLATES, f"the {template} template has no pyproject.toml"
    if revisions:
        for revision, message, upgrades, downgrades in _CHAIN:
            add_revision(folder, template, revision, message, upgrades, downgrades)
    return folder / config


def alembic_config(folder: Path, template: str) -> Any:
    """Alembic's own Config of the project, read as the ``alembic`` command reads it."""
    from alembic.config import Config

    toml = folder / "pyproject.toml" if template in PYPROJECT_TEMPLATES else None
    config = Config(str(folder / "alembic.ini"), toml_file=str(toml) if toml else None, stdout=io.StringIO())
    config.cmd_opts = argparse.Namespace(quiet=True)  # no "Generating ..." lines in the test output
    return config


def versions_dir(folder: Path, template: str) -> Path:
    """The folder the project's revision files go in (script_location is in pyproject.toml for the
    pyproject templates, in alembic.ini for the others)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(folder, template))
    location = Path(script.versions)
    assert location.is_dir(), f"alembic init made no versions folder at {location}"
    return location


def add_revision(
    folder: Path,
    template: str,
    revision: str,
    message: str,
    upgrades: tuple[str, ...],
    downgrades: tuple[str, ...],
) -> Path:
    """Write one revision on the current head, rendered through the project's own script.py.mako
    with the body ``alembic revision --autogenerate`` would put there (indented lines of ``op.*``).

    For the multidb template the operations go to engine1 only (engine2's functions stay ``pass``).
    """
    from alembic.script import ScriptDirectory

    config = alembic_config(folder, template)
    script = ScriptDirectory.from_config(config)
    body_up = "\n    ".join(upgrades)
    body_down = "\n    ".join(downgrades)
    rendered: dict[str, Any] = (
        {"engine1_upgrades": body_up, "engine1_downgrades": body_down} if template == "multidb" else {}
    )
    written = script.generate_revision(
        revision,
        message,
        head="head",
        upgrades=body_up,
        downgrades=body_down,
        imports=None,
        config=config,
        **rendered,
    )
    assert written is not None and written.revision == revision
    path = Path(written.path)
    text = path.read_text()
    assert upgrades[0] in text, f"the operations did not reach {path}:\n{text}"
    return path


def raw_alembic(
    project_dir: Path, config_args: list[str], url: str, *args: str, driver: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``alembic`` command (``alembic -c alembic.ini upgrade head``) as a user would.

    A stock env.py reads the URL from alembic.ini only, so this runs on a copy of the project (a
    sibling folder, refreshed on every call) whose alembic.ini names ``url``: asyncpg for the async
    templates, psycopg for the others, unless ``driver`` names one (``postgresql+psycopg2``). ``config_args``
    are relative to the project folder.
    """
    raw_dir = project_dir.parent / f"{project_dir.name}-raw-alembic"
    if raw_dir.exists():
        shutil.rmtree(raw_dir)
    shutil.copytree(project_dir, raw_dir, ignore=shutil.ignore_patterns("__pycache__", ".hindsight"))
    env_py = (raw_dir / "migrations" / "env.py").read_text()
    driver = driver or ("postgresql+asyncpg" if "async_engine_from_config" in env_py else "postgresql+psycopg")
    rendered = make_url(url).set(drivername=driver).render_as_string(hide_password=False)
    ini = raw_dir / "alembic.ini"
    text, count = re.subn(
        r"^sqlalchemy\.url = driver://.*$",
        lambda _: "sqlalchemy.url = " + rendered.replace("%", "%%"),
        ini.read_text(),
        flags=re.MULTILINE,
    )
    assert count == 1, f"expected one placeholder sqlalchemy.url line in {ini}, found {count}"
    ini.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "alembic", *config_args, *args],
        cwd=raw_dir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"alembic {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def raw_alembic_as_written(folder: Path, *args: str, environment: dict[str, str] | None = None) -> None:
    """Run the ``alembic`` command in ``folder`` on the project as it is, with ``environment`` added (an
    env.py that builds its URL itself finds it there, or in files the project holds)."""
    done = subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=folder,
        env={**_env(), **(environment or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"alembic {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


def schema_of(url: str) -> dict[str, Any]:
    """A comparable description of the database's schemas (the tool's own ``hindsight_migrate``
    left out: raw Alembic has no such thing): tables with their columns, indexes, constraints,
    sequences, and the alembic_version rows."""
    schemas = sorted(
        row[0]
        for row in query(
            url,
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
            "AND nspname NOT IN ('information_schema', :tool)",
            tool=TOOL_SCHEMA,
        )
    )
    columns = query(
        url,
        "SELECT table_schema, table_name, column_name, data_type, character_maximum_length, is_nullable, "
        "column_default FROM information_schema.columns WHERE table_schema = ANY(:schemas) "
        "ORDER BY table_schema, table_name, ordinal_position",
        schemas=schemas,
    )
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for row in query(
        url,
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE table_schema = ANY(:schemas) ORDER BY 1",
        schemas=schemas,
    ):
        tables[row[0]] = []
    for schema, table, *rest in columns:
        tables.setdefault(f"{schema}.{table}", []).append(tuple(rest))
    indexes = query(
        url,
        "SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes "
        "WHERE schemaname = ANY(:schemas) ORDER BY 1, 2, 3",
        schemas=schemas,
    )
    constraints = query(
        url,
        "SELECT n.nspname, c.conrelid::regclass::text, c.conname, c.contype, pg_get_constraintdef(c.oid) "
        "FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE n.nspname = ANY(:schemas) ORDER BY 1, 2, 3",
        schemas=schemas,
    )
    sequences = query(
        url,
        "SELECT sequence_schema, sequence_name, data_type, start_value, increment FROM information_schema.sequences "
        "WHERE sequence_schema = ANY(:schemas) ORDER BY 1, 2",
        schemas=schemas,
    )
    return {
        "schemas": schemas,
        "tables": tables,
        "indexes": indexes,
        "constraints": constraints,
        "sequences": sequences,
        "alembic_version": alembic_version(url),
    }


def _env() -> dict[str, str]:
    """The environment for a subprocess: no DATABASE_URL (a stock env.py never reads it anyway)."""
    return {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}


def two_environments(folder: Path) -> Path:
    """Two Alembic environments in one database, as ``alembic -n NAME`` runs them: an alembic.ini with no
    [alembic] section but [shared] and [tenant], each with its migrations folder (``alembic init``'s generic
    env.py) and a version table of its own; one revision each (S1 creates plans, T1 creates widgets)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("shared", "tenant"):
        done = subprocess.run(
            [sys.executable, "-m", "alembic", "init", "-t", "generic", name],
            cwd=folder,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        (folder / "alembic.ini").rename(folder / f"{name}.ini")
        env_py = folder / name / "env.py"
        configure = "connection=connection, target_metadata=target_metadata"
        text = env_py.read_text()
        assert configure in text
        env_py.write_text(text.replace(configure, f'{configure}, version_table="{name}_version"'))
    generated = (folder / "shared.ini").read_text()
    (folder / "tenant.ini").unlink()
    (folder / "shared.ini").unlink()
    _, _, logging = generated.partition("\n[post_write_hooks]")
    sections = "".join(
        f"[{name}]\nscript_location = %(here)s/{name}\nsqlalchemy.url = {PLACEHOLDER_URL}\n\n"
        for name in ("shared", "tenant")
    )
    ini = folder / "alembic.ini"
    ini.write_text(sections + "[post_write_hooks]" + logging)
    for name, revision, table in (("shared", S1, "plans"), ("tenant", T1, "widgets")):
        (folder / name / "versions" / f"{revision}_create_{table}.py").write_text(
            f'"""create {table}\n\nRevision ID: {revision}\nRevises:\n"""\n'
            "from alembic import op\nimport sqlalchemy as sa\n\n"
            f'revision = "{revision}"\ndown_revision = None\nbranch_labels = None\ndepends_on = None\n\n\n'
            f'def upgrade():\n    op.create_table("{table}", sa.Column("id", sa.BigInteger(), primary_key=True))\n\n\n'
            f'def downgrade():\n    op.drop_table("{table}")\n'
        )
    return ini


S1 = "5a0000000001"  # the shared environment's one revision
T1 = "7e0000000001"  # the tenant environment's one revision
# -- projects whose env.py picks the schema: search_path, one schema or many tenants --------

S1 = "b20000000001"  # creates widgets(id serial, name)
S2 = "b20000000002"  # creates gadgets(id serial, widget_id -> widgets.id)
_SCHEMA_CHAIN: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        S1,
        "create widgets",
        (
            "op.create_table(",
            '    "widgets",',
            '    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),',
            '    sa.Column("name", sa.Text(), nullable=False),',
            '    sa.PrimaryKeyConstraint("id"),',
            ")",
        ),
        ('op.drop_table("widgets")',),
    ),
    (
        S2,
        "create gadgets",
        (
            "op.create_table(",
            '    "gadgets",',
            '    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),',
            '    sa.Column("widget_id", sa.Integer(), nullable=False),',
            '    sa.ForeignKeyConstraint(["widget_id"], ["widgets.id"]),',
            '    sa.PrimaryKeyConstraint("id"),',
            ")",
        ),
        ('op.drop_table("gadgets")',),
    ),
)

# run_migrations_online of a generic env.py, with the schema chosen the two ways users do it:
# ``SET search_path`` on the connection before configure (one named schema), or Alembic's
# cookbook recipe for schema-level multi-tenancy (the same revisions run once per tenant, each
# tenant with its own version table).
_ONE_SCHEMA_ONLINE = """
def run_migrations_online() -> None:
    from sqlalchemy import text

    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {{}}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        connection.execute(text('SET search_path TO "{schema}"'))
        connection.commit()
        connection.dialect.default_schema_name = "{schema}"
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()

"""
_TENANTS_ONLINE = """
TENANTS = {tenants!r}


def run_migrations_online() -> None:
    from sqlalchemy import text

    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {{}}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        for schema in TENANTS:
            connection.execute(text(f'SET search_path TO "{{schema}}"'))
            connection.commit()
            connection.dialect.default_schema_name = schema
            context.configure(
                connection=connection, target_metadata=target_metadata, version_table_schema=schema
            )
            with context.begin_transaction():
                context.run_migrations()

"""


def schema_project(folder: Path, *, schema: str | None = None, tenants: tuple[str, ...] = ()) -> Path:
    """A generic ``alembic init`` project with S1 (widgets) and S2 (gadgets, a foreign key to widgets),
    both with serial ids, whose env.py migrates the named ``schema`` (``SET search_path``) or each of
    ``tenants`` in turn; the schemas themselves are the test's to create. Returns alembic.ini."""
    assert (schema is None) != (not tenants), "one schema or a list of tenants"
    ini = init_project(folder, "generic", revisions=False)
    for revision, message, upgrades, downgrades in _SCHEMA_CHAIN:
        add_revision(folder, "generic", revision, message, upgrades, downgrades)
    env_py = folder / "migrations" / "env.py"
    text = env_py.read_text()
    start, end = text.index("def run_migrations_online"), text.index("if context.is_offline_mode()")
    online = _ONE_SCHEMA_ONLINE.format(schema=schema) if schema else _TENANTS_ONLINE.format(tenants=list(tenants))
    env_py.write_text(text[:start] + online.lstrip("\n") + "\n" + text[end:])
    return ini
