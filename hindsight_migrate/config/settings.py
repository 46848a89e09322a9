"""What a command needs to know before it touches Alembic or the database, as types, and the tool's own
``[hindsight-migrate]`` settings read from the ini or pyproject.toml.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hindsight_migrate.duration import (
    A_MINUTE,
    A_SECOND,
    A_TENTH_OF_A_SECOND,
    FIVE_MINUTES,
    FIVE_SECONDS,
    TEN_SECONDS,
    Duration,
)
from hindsight_migrate.errors import ConfigError
from hindsight_migrate.masking import mask_secrets

TOOL_SECTION = "hindsight-migrate"
DEFAULT_INI = Path("alembic.ini")
PYPROJECT = "pyproject.toml"
DEFAULT_SECTION = "alembic"
EMBEDDED_DATA_DIR = Path(".hindsight") / "pgdata"


@dataclass(frozen=True)
class DatabaseSource:
    """The database a command talks to: a URL with where it came from, or the embedded server."""

    url: str | None  # normalised to postgresql+psycopg://; None means the embedded server (or unusable)
    origin: str  # human words: "--url", "DATABASE_URL (environment)", "embedded server", ...
    embedded_data_dir: Path | None = None
    # Why the URL that won cannot be used (Alembic's placeholder): said when a command needs the
    # database, so the commands that need none (history --offline, up --sql, lint RANGE) still run.
    unusable: str | None = None
    # The URL as the project wrote it (its own driver: +asyncpg, +psycopg2), for showing: the tool
    # connects with psycopg 3, but the reader knows the database by the URL they configured.
    written: str | None = None
    # Nobody named a database (no --url, DATABASE_URL, nor a real sqlalchemy.url): the target is the
    # one env.py connects to, if it names one; the embedded server (or the refusal) only if not.
    ask_env_py: bool = False

    @property
    def is_embedded(self) -> bool:
        return self.url is None and self.unusable is None

    @property
    def masked_url(self) -> str:
        if self.unusable is not None:
            return f"no usable database ({self.origin} holds Alembic's placeholder URL)"
        if self.url is None:
            return f"embedded PostgreSQL ({self.embedded_data_dir})"
        return mask_secrets(self.written or self.url)

    @property
    def project_driver(self) -> str:
        """The driver the URL as written names, as SQLAlchemy reads it (``postgresql://`` means psycopg2)."""
        scheme = (self.written or self.url or "postgresql+psycopg://").partition("://")[0].lower()
        backend, _, driver = scheme.partition("+")
        return driver or ("psycopg2" if backend in ("postgresql", "postgres") else backend)

    @property
    def other_driver(self) -> bool:
        """The URL names a driver other than psycopg 3 (``+asyncpg``), while the tool connects with psycopg 3."""
        if self.url is None or self.written is None:
            return False
        scheme = self.written.partition("://")[0].lower()
        return "+" in scheme and scheme.partition("+")[2] != "psycopg"


@dataclass(frozen=True)
class ToolSettings:
    """The ``[hindsight-migrate]`` knobs beyond bootstrap, with the defaults a careful team wants."""

    lock_timeout: Duration = FIVE_SECONDS  # every applying connection: give up instead of queueing traffic
    statement_timeout: Duration = A_MINUTE  # budget of a rehearsal on the target (--rehearse-on target)
    rehearsal_data_limit_mb: int = 200  # copy the data into the scratch database up to this size
    # Over that, a sample of each table's rows up to this many MB in all, to predict lock times from; 0: the schema
    # alone (lock times on tables with rows are then unknown).
    rehearsal_sample_mb: int = 32
    lint_error_rules: tuple[str, ...] = ()  # Squawk rules whose findings block `up`
    # The tool sets lock_timeout itself and runs each revision in a transaction, which is what
    # these rules ask for; they would only add noise to every plan.
    lint_ignore_rules: tuple[str, ...] = ("prefer-robust-stmts", "require-lock-timeout", "require-statement-timeout")
    # A revision whose downgrade() does nothing while its upgrade() does (a data backfill) is
    # reverted with a warning by default, as raw Alembic reverts it; teams that want every
    # revision to undo itself set this to refuse such downgrades (and fail `check` on them).
    refuse_noop_downgrades: bool = False
    # --detailed-exitcode calls a plan destructive (exit 3) when a lock that blocks reads or writes
    # of an existing table is held longer than this at the target's size (a prediction's high end;
    # a hold that is unknown counts as longer).
    destructive_lock: Duration = A_SECOND
    # A revision that waits too long for a lock (a long transaction holds one it needs) is retried this
    # many times, after a jittered, growing pause, resuming at that revision. Each attempt holds traffic
    # back only as long as it waits: lock_timeout_start at first, doubled for every lock_timeout_doubling
    # the revision has waited, up to lock_timeout (review/lock_waits.py). The attempts and pauses together
    # stop at lock_retry_max_wait.
    lock_retries: int = 20
    lock_retry_max_wait: Duration = FIVE_MINUTES
    lock_timeout_start: Duration = A_TENTH_OF_A_SECOND
    lock_timeout_doubling: Duration = TEN_SECONDS


@dataclass(frozen=True)
class FlaskProject:
    """How to find the Flask app, as ``flask`` finds it: FLASK_APP, else app.py or wsgi.py in the
    folder the command runs in, which is on sys.path."""

    app: str | None  # FLASK_APP as given ("app", "app:create_app()"); None: Flask's own search
    folder: Path  # where the command runs: Flask imports the app from here
    migrations: Path  # Flask-Migrate's migrations folder (the ini's): script_location when the ini names none


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
    # A Flask-Migrate project (its env.py reads flask's current_app): env.py runs inside the app's context, as
    # `flask db` runs it, and script_location is the ini's folder when the ini names none.
    flask: FlaskProject | None = None
    # An `alembic init -t multidb` project (databases = engine1, engine2): each name with its section's
    # sqlalchemy.url, run as a small fleet (one database per run); () for every other project.
    multidb: tuple[tuple[str, str], ...] = ()

    @property
    def config_path(self) -> Path:
        """The configuration file to name in messages: the ini, or pyproject.toml when there is no ini."""
        path = self.ini_path or self.toml_path
        assert path is not None, "resolve_settings always finds one of them"
        return path


LAYOUTS = (
    "hindsight-migrate reads these layouts: an alembic.ini with [alembic] script_location; "
    "a pyproject.toml with [tool.alembic] script_location (alembic init -t pyproject), optionally "
    "beside an alembic.ini holding sqlalchemy.url and logging; -n SECTION for another ini section."
)
TOOL_KEYS = (
    "bootstrap_sql",
    "baseline",
    "lock_timeout",
    "statement_timeout",
    "rehearsal_data_limit_mb",
    "rehearsal_sample_mb",
    "lint_error_rules",
    "lint_ignore_rules",
    "refuse_noop_downgrades",
    "destructive_lock",
    "lock_retries",
    "lock_retry_max_wait",
    "lock_timeout_start",
    "lock_timeout_doubling",
)
TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")
# `alembic init` writes sqlalchemy.url = driver://user:pass@localhost/dbname (dbname2 in multidb).
PLACEHOLDER = re.compile(r"\s*driver(\+[^:/@]*)?://", re.IGNORECASE)


@dataclass(frozen=True)
class IniFile:
    path: Path
    parser: configparser.ConfigParser


@dataclass(frozen=True)
class TomlFile:
    path: Path
    alembic: Mapping[str, Any] | None  # the [tool.alembic] table; None when the file has none
    tool: Mapping[str, Any] | None  # the [tool.hindsight-migrate] table


@dataclass(frozen=True)
class ToolTable:
    """The tool's own settings, from whichever file holds them."""

    where: str  # "[hindsight-migrate] of /p/alembic.ini": for messages
    folder: Path  # relative paths in it start here
    values: Mapping[str, object]  # key -> an ini string, or a TOML value


# -- the tool's own settings -------------------------------------------------------------


def tool_table(ini: IniFile | None, toml: TomlFile | None) -> ToolTable | None:
    in_ini = ini if ini is not None and ini.parser.has_section(TOOL_SECTION) else None
    in_toml = toml.tool if toml is not None else None
    if in_ini is not None and in_toml is not None:
        raise ConfigError(
            f"hindsight-migrate's settings are in two places: [{TOOL_SECTION}] of {in_ini.path} and "
            f"[tool.{TOOL_SECTION}] of {present(toml).path}. Keep the settings in one place: move them "
            "into one of the two and delete the other."
        )
    if in_ini is not None:
        section = in_ini.parser[TOOL_SECTION]
        values: dict[str, object] = {}
        for key in TOOL_KEYS:
            if not in_ini.parser.has_option(TOOL_SECTION, key):
                continue
            try:
                values[key] = section[key]
            except configparser.Error as err:
                # configparser quotes the value: say what is wrong, not the value.
                raise ConfigError(
                    f"{key} in [{TOOL_SECTION}] of {in_ini.path} cannot be read: write '%' as '%%'."
                ) from err
        return ToolTable(f"[{TOOL_SECTION}] of {in_ini.path}", in_ini.path.parent, values)
    if in_toml is not None:
        folder = present(toml).path.parent
        here = folder.as_posix()

        def substituted(value: object) -> object:
            if isinstance(value, str):
                return value.replace("%(here)s", here)
            if isinstance(value, list):
                return [substituted(item) for item in value]
            return value

        return ToolTable(
            f"[tool.{TOOL_SECTION}] of {present(toml).path}",
            folder,
            {key: substituted(value) for key, value in in_toml.items()},
        )
    return None


def settings_from(table: ToolTable) -> tuple[Path | None, str | None, ToolSettings]:
    """(bootstrap_sql, baseline, the other knobs) from an ini section or a TOML table."""
    defaults = ToolSettings()
    where = table.where

    def text(key: str, *, numbers: bool = False) -> str | None:
        value = table.values.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return value.strip() or None
        if numbers and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        wanted = "a string or a number" if numbers else "a string"
        raise ConfigError(f"{key} in {where} must be {wanted}, not {kind_of(value)}.")

    def duration(key: str, default: Duration) -> Duration:
        value = text(key, numbers=True)
        if value is None:
            return default
        parsed = Duration.parse(value)
        if parsed is None:
            raise ConfigError(f"{key} = {value!r} in {where} is not a duration like 5s, 500ms or 2min.")
        return parsed

    def rules(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = table.values.get(key)
        if value is None:
            return default
        if isinstance(value, str):
            return tuple(rule.strip() for rule in value.replace("\n", ",").split(",") if rule.strip())
        if isinstance(value, list) and all(isinstance(rule, str) for rule in value):
            return tuple(rule.strip() for rule in value if rule.strip())
        raise ConfigError(
            f"{key} in {where} must be rule names: a TOML array of strings, or names separated by commas; "
            f"not {kind_of(value)}."
        )

    def whole_number(key: str, default: int, unit: str) -> int:
        value = table.values.get(key)
        if isinstance(value, str) and re.fullmatch(r"\s*[0-9]*\s*", value):
            return int(value) if value.strip() else default
        if value is None:
            return default
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise ConfigError(f"{key} in {where} must be a whole number{unit}.")

    def flag(key: str, default: bool) -> bool:
        value = table.values.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            word = value.strip().lower()
            if not word:
                return default
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
        raise ConfigError(
            f"{key} = {value!r} in {where} is not true or false. Accepted values: true, false, yes, no, 1, 0 "
            "(in any case), or a TOML true/false in pyproject.toml."
        )

    raw_sql = text("bootstrap_sql")
    bootstrap_sql = (table.folder / raw_sql).resolve() if raw_sql else None
    tool = ToolSettings(
        lock_timeout=duration("lock_timeout", defaults.lock_timeout),
        statement_timeout=duration("statement_timeout", defaults.statement_timeout),
        rehearsal_data_limit_mb=whole_number("rehearsal_data_limit_mb", defaults.rehearsal_data_limit_mb, " of MB"),
        rehearsal_sample_mb=whole_number("rehearsal_sample_mb", defaults.rehearsal_sample_mb, " of MB"),
        lint_error_rules=rules("lint_error_rules", defaults.lint_error_rules),
        lint_ignore_rules=rules("lint_ignore_rules", defaults.lint_ignore_rules),
        refuse_noop_downgrades=flag("refuse_noop_downgrades", defaults.refuse_noop_downgrades),
        destructive_lock=duration("destructive_lock", defaults.destructive_lock),
        lock_retries=whole_number("lock_retries", defaults.lock_retries, " (of retries; 0 for none)"),
        lock_retry_max_wait=duration("lock_retry_max_wait", defaults.lock_retry_max_wait),
        lock_timeout_start=duration("lock_timeout_start", defaults.lock_timeout_start),
        lock_timeout_doubling=duration("lock_timeout_doubling", defaults.lock_timeout_doubling),
    )
    if tool.lock_timeout_doubling.seconds <= 0:
        raise ConfigError(
            f"lock_timeout_doubling = {tool.lock_timeout_doubling} in {where} must be longer than 0: the wait "
            "doubles for every lock_timeout_doubling a revision has waited (lock_timeout_start = 0 makes every "
            "attempt wait the whole lock_timeout)."
        )
    return bootstrap_sql, text("baseline"), tool


def kind_of(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"

def present(toml: TomlFile | None) -> TomlFile:
    assert toml is not None, "find_configuration finds an ini or a pyproject.toml"
    return toml
