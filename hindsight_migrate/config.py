"""Where every setting comes from, resolved once per command.

Order for the database URL (the first that is set wins):

1. ``--url``
2. ``DATABASE_URL`` in the environment
3. ``DATABASE_URL`` in a ``.env`` file found from the current directory upwards
4. ``sqlalchemy.url`` in alembic.ini
5. nothing: the embedded PostgreSQL server under ``<project>/.hindsight/pgdata``

Tool settings live in the ``[hindsight-migrate]`` section of alembic.ini; paths in it are
relative to the ini file's folder, like Alembic's own ``%(here)s``.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass
from pathlib import Path

from hindsight_migrate.errors import ConfigError
from hindsight_migrate.masking import forget_secrets, mask_secrets, remember_secret_of

TOOL_SECTION = "hindsight-migrate"
DEFAULT_INI = Path("alembic.ini")
EMBEDDED_DATA_DIR = Path(".hindsight") / "pgdata"


@dataclass(frozen=True)
class DatabaseSource:
    """The database a command talks to: a URL with where it came from, or the embedded server."""

    url: str | None  # normalised to postgresql+psycopg://; None means the embedded server
    origin: str  # human words: "--url", "DATABASE_URL (environment)", "embedded server", ...
    embedded_data_dir: Path | None = None

    @property
    def is_embedded(self) -> bool:
        return self.url is None

    @property
    def masked_url(self) -> str:
        if self.url is None:
            return f"embedded PostgreSQL ({self.embedded_data_dir})"
        return mask_secrets(self.url)


@dataclass(frozen=True)
class ToolSettings:
    """The ``[hindsight-migrate]`` knobs beyond bootstrap, with the defaults a careful team wants."""

    lock_timeout: str = "5s"  # every applying connection: give up instead of queueing traffic
    statement_timeout: str = "60s"  # budget of a rehearsal on the target (--rehearse-on target)
    rehearsal_data_limit_mb: int = 200  # copy the data into the scratch database up to this size
    lint_error_rules: tuple[str, ...] = ()  # Squawk rules whose findings block `up`
    # The tool sets lock_timeout itself and runs each revision in a transaction, which is what
    # these rules ask for; they would only add noise to every plan.
    lint_ignore_rules: tuple[str, ...] = ("prefer-robust-stmts", "require-lock-timeout", "require-statement-timeout")
    # A revision whose downgrade() does nothing while its upgrade() does (a data backfill) is
    # reverted with a warning by default, as raw Alembic reverts it; teams that want every
    # revision to undo itself set this to refuse such downgrades (and fail `check` on them).
    refuse_noop_downgrades: bool = False


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know before it touches Alembic or the database."""

    ini_path: Path | None  # the ini file Alembic reads; None when the configuration is in pyproject.toml alone
    toml_path: Path | None  # pyproject.toml with a [tool.alembic] table, read alongside the ini (or instead of it)
    project_dir: Path  # the folder of the configuration file: relative paths in it start here
    ini_section: str  # the ini section Alembic reads (-n/--name, as alembic's own -n); "alembic" by default
    database: DatabaseSource
    bootstrap_sql: Path | None
    baseline: str | None
    tool: ToolSettings = ToolSettings()
    verbose: bool = False  # let Alembic's own log lines through while env.py runs

    @property
    def config_path(self) -> Path:
        """The configuration file to name in messages: the ini, or pyproject.toml when there is no ini."""
        path = self.ini_path or self.toml_path
        assert path is not None, "resolve_settings always finds one of them"
        return path


def resolve_settings(
    *,
    config_path: Path | None,
    url: str | None,
    cwd: Path | None = None,
    ini_section: str = "alembic",
    verbose: bool = False,
) -> Settings:
    """Read alembic.ini and the environment; never touches the database."""
    forget_secrets()
    here = (cwd or Path.cwd()).resolve()
    ini_path = (here / (config_path or DEFAULT_INI)).resolve()
    parser = _read_ini(ini_path)
    project_dir = ini_path.parent
    tool = parser[TOOL_SECTION] if parser.has_section(TOOL_SECTION) else None

    bootstrap_sql = None
    baseline = None
    tool_settings = _tool_settings(tool, ini_path) if tool is not None else ToolSettings()
    if tool is not None:
        try:
            raw_sql = tool.get("bootstrap_sql", "").strip()
            baseline = tool.get("baseline", "").strip() or None
        except configparser.Error as err:
            raise ConfigError(
                f"The [{TOOL_SECTION}] section of {ini_path} cannot be read: a '%' must be written '%%'."
            ) from err
        bootstrap_sql = (project_dir / raw_sql).resolve() if raw_sql else None

    return Settings(
        ini_path=ini_path,
        toml_path=None,
        project_dir=project_dir,
        ini_section=ini_section,
        database=_resolve_database(url, here, parser, project_dir),
        bootstrap_sql=bootstrap_sql,
        baseline=baseline,
        tool=tool_settings,
        verbose=verbose,
    )


def _tool_settings(section: configparser.SectionProxy, ini_path: Path) -> ToolSettings:
    defaults = ToolSettings()

    def raw(key: str) -> str | None:
        try:
            value = section.get(key)
        except configparser.Error as err:
            raise ConfigError(f"{key} in [{TOOL_SECTION}] of {ini_path} cannot be read: write '%' as '%%'.") from err
        return value.strip() if value is not None else None

    def duration(key: str, default: str) -> str:
        value = raw(key) or default
        if not re.fullmatch(r"\d+(\.\d+)?\s*(ms|s|min|h)?", value):
            raise ConfigError(f"{key} = {value!r} in {ini_path} is not a duration like 5s, 500ms or 2min.")
        return value

    def rules(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = raw(key)
        if value is None:
            return default
        return tuple(rule.strip() for rule in value.replace("\n", ",").split(",") if rule.strip())

    limit = raw("rehearsal_data_limit_mb") or str(defaults.rehearsal_data_limit_mb)
    if not limit.isdigit():
        raise ConfigError(f"rehearsal_data_limit_mb in [{TOOL_SECTION}] of {ini_path} must be a whole number of MB.")
    return ToolSettings(
        lock_timeout=duration("lock_timeout", defaults.lock_timeout),
        statement_timeout=duration("statement_timeout", defaults.statement_timeout),
        rehearsal_data_limit_mb=int(limit),
        lint_error_rules=rules("lint_error_rules", defaults.lint_error_rules),
        lint_ignore_rules=rules("lint_ignore_rules", defaults.lint_ignore_rules),
    )


def _read_ini(ini_path: Path) -> configparser.ConfigParser:
    if not ini_path.is_file():
        raise ConfigError(
            f"No Alembic configuration at {ini_path}. Run hindsight-migrate from the folder "
            "that holds alembic.ini, or point to it with -c/--config PATH."
        )
    # Same interpolation as Alembic's own Config, so %(here)s means the ini's folder.
    parser = configparser.ConfigParser(defaults={"here": str(ini_path.parent)})
    try:
        with ini_path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as err:
        raise ConfigError(f"Cannot read {ini_path}: {err.strerror}.") from err
    except (configparser.Error, UnicodeDecodeError) as err:
        raise ConfigError(f"{ini_path} is not a valid ini file: {err}") from err
    if not parser.has_section("alembic") or not parser.get("alembic", "script_location", fallback=""):
        raise ConfigError(
            f"{ini_path} has no [alembic] section with a script_location, so it does not say "
            "where the migrations are. Is this the right file?"
        )
    return parser


def _resolve_database(
    flag_url: str | None, cwd: Path, parser: configparser.ConfigParser, project_dir: Path
) -> DatabaseSource:
    candidates: list[tuple[str | None, str]] = [
        (flag_url, "--url"),
        (os.environ.get("DATABASE_URL"), "DATABASE_URL (environment)"),
    ]
    dotenv_path = _find_dotenv(cwd)
    if dotenv_path is not None:
        from dotenv import dotenv_values

        candidates.append((dotenv_values(dotenv_path).get("DATABASE_URL"), f"DATABASE_URL ({dotenv_path})"))
    try:
        ini_url = parser.get("alembic", "sqlalchemy.url", fallback="")
    except configparser.Error as err:
        # configparser quotes the value, password included: say what is wrong, not the value.
        raise ConfigError(
            "sqlalchemy.url in alembic.ini cannot be read: a '%' in an ini value must be written "
            "'%%' (the file is read with interpolation, as Alembic reads it)."
        ) from err
    candidates.append((ini_url, "sqlalchemy.url (alembic.ini)"))

    for raw, origin in candidates:
        if raw is not None and raw.strip():
            return DatabaseSource(url=normalize_url(raw.strip(), origin), origin=origin)
    return DatabaseSource(
        url=None,
        origin="embedded server (no database URL configured)",
        embedded_data_dir=project_dir / EMBEDDED_DATA_DIR,
    )


def _find_dotenv(cwd: Path) -> Path | None:
    for folder in (cwd, *cwd.parents):
        candidate = folder / ".env"
        if candidate.is_file():
            return candidate
    return None


def normalize_url(raw: str, origin: str = "--url") -> str:
    """Validate a PostgreSQL URL and point it at psycopg 3; the result keeps its password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    remember_secret_of(raw)  # before anything can quote it back
    shown = mask_secrets(raw)
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ConfigError(f"The database URL from {origin} is not UTF-8 text.") from err
    try:
        parsed = make_url(raw)
    except (ArgumentError, ValueError) as err:
        raise ConfigError(
            f"The database URL from {origin} is not a valid URL: {shown!r}. Expected the form "
            "postgresql://USER@HOST:PORT/DATABASE (a password goes after the user, as USER:PASSWORD)."
        ) from err
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in ("postgresql", "postgres"):
        raise ConfigError(
            f"The database URL from {origin} is for {backend!r}; hindsight-migrate works with "
            f"PostgreSQL only ({shown})."
        )
    if driver not in ("", "psycopg"):
        raise ConfigError(
            f"The database URL from {origin} asks for the driver {driver!r}; hindsight-migrate "
            "uses psycopg 3. Write it as postgresql://… or postgresql+psycopg://…"
        )
    if not parsed.database:
        raise ConfigError(
            f"The database URL from {origin} names no database ({shown}). Add it at the end: "
            "postgresql://USER@HOST:PORT/DATABASE."
        )
    rendered = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    remember_secret_of(rendered)  # SQLAlchemy may write the password back percent-encoded
    return rendered
