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

from __future__ import annotations

import configparser
import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from hindsight_migrate.duration import A_MINUTE, A_SECOND, FIVE_MINUTES, FIVE_SECONDS, Duration
from hindsight_migrate.errors import ConfigError
from hindsight_migrate.masking import forget_secrets, mask_secrets, remember_secret_of

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

    @property
    def is_embedded(self) -> bool:
        return self.url is None and self.unusable is None

    @property
    def masked_url(self) -> str:
        if self.unusable is not None:
            return f"no usable database ({self.origin} holds Alembic's placeholder URL)"
        if self.url is None:
            return f"embedded PostgreSQL ({self.embedded_data_dir})"
        return mask_secrets(self.url)


@dataclass(frozen=True)
class ToolSettings:
    """The ``[hindsight-migrate]`` knobs beyond bootstrap, with the defaults a careful team wants."""

    lock_timeout: Duration = FIVE_SECONDS  # every applying connection: give up instead of queueing traffic
    statement_timeout: Duration = A_MINUTE  # budget of a rehearsal on the target (--rehearse-on target)
    rehearsal_data_limit_mb: int = 200  # copy the data into the scratch database up to this size
    lint_error_rules: tuple[str, ...] = ()  # Squawk rules whose findings block `up`
    # The tool sets lock_timeout itself and runs each revision in a transaction, which is what
    # these rules ask for; they would only add noise to every plan.
    lint_ignore_rules: tuple[str, ...] = ("prefer-robust-stmts", "require-lock-timeout", "require-statement-timeout")
    # A revision whose downgrade() does nothing while its upgrade() does (a data backfill) is
    # reverted with a warning by default, as raw Alembic reverts it; teams that want every
    # revision to undo itself set this to refuse such downgrades (and fail `check` on them).
    refuse_noop_downgrades: bool = False
    # --detailed-exitcode calls a plan destructive (exit 3) when a lock that blocks reads or writes
    # of an existing table was held longer than this in the rehearsal.
    destructive_lock: Duration = A_SECOND
    # A revision that hits lock_timeout (a long transaction holds a lock it needs) is retried this
    # many times, after a jittered, growing pause, resuming at that revision: each attempt holds
    # traffic back for at most lock_timeout. The attempts and pauses together stop at lock_retry_max_wait.
    lock_retries: int = 10
    lock_retry_max_wait: Duration = FIVE_MINUTES


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
    "lint_error_rules",
    "lint_ignore_rules",
    "refuse_noop_downgrades",
    "destructive_lock",
    "lock_retries",
    "lock_retry_max_wait",
)
TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")
# `alembic init` writes sqlalchemy.url = driver://user:pass@localhost/dbname (dbname2 in multidb).
_PLACEHOLDER = re.compile(r"\s*driver(\+[^:/@]*)?://", re.IGNORECASE)


@dataclass(frozen=True)
class _Ini:
    path: Path
    parser: configparser.ConfigParser


@dataclass(frozen=True)
class _Toml:
    path: Path
    alembic: Mapping[str, Any] | None  # the [tool.alembic] table; None when the file has none
    tool: Mapping[str, Any] | None  # the [tool.hindsight-migrate] table


@dataclass(frozen=True)
class _ToolTable:
    """The tool's own settings, from whichever file holds them."""

    where: str  # "[hindsight-migrate] of /p/alembic.ini": for messages
    folder: Path  # relative paths in it start here
    values: Mapping[str, object]  # key -> an ini string, or a TOML value


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
    ini, toml = _find_configuration(config_path, here)
    _check_layout(ini, toml, ini_section)
    if ini is not None:
        _refuse_multidb(ini, ini_section)
    table = _tool_table(ini, toml)
    bootstrap_sql, baseline, tool_settings = (
        _settings_from(table) if table is not None else (None, None, ToolSettings())
    )
    config_file = ini.path if ini is not None else _present(toml).path
    project_dir = config_file.parent

    return Settings(
        ini_path=ini.path if ini is not None else None,
        toml_path=toml.path if toml is not None else None,
        project_dir=project_dir,
        ini_section=ini_section,
        database=_resolve_database(url, here, ini, toml, ini_section, project_dir),
        bootstrap_sql=bootstrap_sql,
        baseline=baseline,
        tool=tool_settings,
        verbose=verbose,
    )


def _present(toml: _Toml | None) -> _Toml:
    assert toml is not None, "_find_configuration finds an ini or a pyproject.toml"
    return toml


# -- finding and reading the files -------------------------------------------------------


def _find_configuration(config_path: Path | None, here: Path) -> tuple[_Ini | None, _Toml | None]:
    """The ini file and pyproject.toml Alembic would read, as its own command line finds them."""
    named: Path | None = None
    if config_path is None:
        ini_path, toml_path = (here / DEFAULT_INI).resolve(), (here / PYPROJECT).resolve()
    else:
        named = (here / config_path).resolve()
        # By the name given, as Alembic decides (a link named pyproject.toml is one).
        if config_path.name == PYPROJECT:
            ini_path, toml_path = named.parent / DEFAULT_INI, named
        else:
            ini_path, toml_path = named, named.parent / PYPROJECT
        if not named.is_file():
            what = "it is a folder, not a file" if named.is_dir() else "there is no such file"
            raise ConfigError(
                f"No Alembic configuration at {named}: {what}. Point -c/--config PATH at an alembic.ini, "
                "or at a pyproject.toml with a [tool.alembic] table."
            )
    ini = _read_ini(ini_path) if ini_path.is_file() else None
    toml = _read_toml(toml_path) if toml_path.is_file() else None
    if toml is not None and toml.path != named and toml.alembic is None and toml.tool is None:
        toml = None  # a pyproject.toml with nothing for Alembic nor for us: not part of the configuration
    if ini is None and toml is None:
        found = (
            f"there is no alembic.ini, and {toml_path} has no [tool.alembic] table"
            if toml_path.is_file()
            else "there is no alembic.ini, nor a pyproject.toml with a [tool.alembic] table, in that folder"
        )
        raise ConfigError(
            f"No Alembic configuration at {ini_path}: {found}. Run hindsight-migrate from the folder that "
            "holds alembic.ini (alembic init) or a pyproject.toml with [tool.alembic] (alembic init -t pyproject), "
            "or point to either with -c/--config PATH."
        )
    return ini, toml


def _read_ini(ini_path: Path) -> _Ini:
    # Same interpolation as Alembic's own Config, so %(here)s means the ini's folder.
    parser = configparser.ConfigParser(defaults={"here": str(ini_path.parent)})
    try:
        with ini_path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as err:
        raise ConfigError(f"Cannot read {ini_path}: {err.strerror}.") from err
    except (configparser.Error, UnicodeDecodeError) as err:
        raise ConfigError(f"{ini_path} is not a valid ini file: {err}") from err
    return _Ini(ini_path, parser)


def _read_toml(toml_path: Path) -> _Toml:
    loads, decode_error = _toml_parser(toml_path)
    try:
        text = toml_path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"Cannot read {toml_path}: {err.strerror}.") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{toml_path} is not a valid TOML file: it is not UTF-8 text.") from err
    try:
        data = loads(text)
    except decode_error as err:
        raise ConfigError(f"{toml_path} is not a valid TOML file: {err}") from err
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{toml_path} is not a pyproject.toml Alembic can read: 'tool' must be a table.")
    return _Toml(toml_path, _toml_table(tool, "alembic", toml_path), _toml_table(tool, TOOL_SECTION, toml_path))


def _toml_table(tool: Mapping[str, Any], name: str, toml_path: Path) -> Mapping[str, Any] | None:
    table = tool.get(name)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.{name}] in {toml_path} must be a table (a [tool.{name}] section), not a value.")
    return cast("Mapping[str, Any]", table)


def _toml_parser(toml_path: Path) -> tuple[Callable[[str], dict[str, Any]], type[Exception]]:
    """Python's tomllib (3.11 and later), else tomli: what Alembic reads pyproject.toml with."""
    for name in ("tomllib", "tomli"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return cast("Callable[[str], dict[str, Any]]", module.loads), cast("type[Exception]", module.TOMLDecodeError)
    raise ConfigError(
        f"Reading {toml_path} needs a TOML parser: install tomli (pip install tomli); "
        "Python 3.11 and later have one built in."
    )


# -- what the files must say -------------------------------------------------------------


def _check_layout(ini: _Ini | None, toml: _Toml | None, section: str) -> None:
    """The section named with -n exists, and script_location is in it or in [tool.alembic]."""
    if ini is not None and section != DEFAULT_SECTION and not ini.parser.has_section(section):
        sections = ", ".join(f"[{name}]" for name in ini.parser.sections()) or "none at all"
        raise ConfigError(
            f"{ini.path} has no [{section}] section, which -n/--name {section} asks for. Its sections: {sections}. "
            f"Name one of them with -n SECTION, or leave -n out to read [{DEFAULT_SECTION}]."
        )
    if ini is None and section != DEFAULT_SECTION:
        raise ConfigError(
            f"-n/--name {section} selects a section of alembic.ini, but the configuration is "
            f"{_present(toml).path} alone, with no alembic.ini beside it ([tool.alembic] has no sections "
            f"to choose from). Leave -n out, or add an alembic.ini with a [{section}] section beside it."
        )
    ini_location = ini.parser.get(section, "script_location", raw=True, fallback="").strip() if ini else ""
    if ini_location or _toml_script_location(toml):
        return
    found: list[str] = []
    if ini is not None:
        found.append(f"{ini.path} has no [{section}] section with a script_location")
    if toml is not None:
        found.append(
            f"{toml.path} has no [tool.alembic] table"
            if toml.alembic is None
            else f"{toml.path} has no script_location in [tool.alembic]"
        )
    raise ConfigError(f"{'; '.join(found)}, so nothing says where the migrations are. {LAYOUTS}")


def _toml_script_location(toml: _Toml | None) -> str:
    if toml is None or toml.alembic is None:
        return ""
    value = toml.alembic.get("script_location")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(
            f"script_location in [tool.alembic] of {toml.path} must be a string (the migrations folder), "
            f"not {_kind(value)}."
        )
    return value.strip()


def _refuse_multidb(ini: _Ini, section: str) -> None:
    """The multidb template's ``databases = engine1, engine2``: one run would migrate each of them."""
    listed = ini.parser.get(section, "databases", raw=True, fallback="").strip()
    if not listed:
        return
    described: list[str] = []
    for name in (part.strip() for part in re.split(r",\s*", listed)):  # as the template's env.py splits it
        if not name:
            continue
        if not ini.parser.has_section(name):
            described.append(f"[{name}] (no such section)")
            continue
        try:
            url = ini.parser.get(name, "sqlalchemy.url", fallback="").strip()
        except configparser.Error:
            described.append(f"[{name}] (a sqlalchemy.url that cannot be read: write '%' as '%%')")
            continue
        if url:
            remember_secret_of(url)  # before anything can quote it back
            described.append(f"[{name}] {mask_secrets(url)}")
        else:
            described.append(f"[{name}] (no sqlalchemy.url)")
    raise ConfigError(
        f"{ini.path} [{section}] lists several databases (databases = {listed}), so its env.py migrates "
        f"each of them in one run: {'; '.join(described)}. hindsight-migrate drives one database per run. "
        "Point it at one with a single-database configuration: an ini section of its own with sqlalchemy.url "
        "and script_location, selected with -n SECTION, or a separate project."
    )


# -- the tool's own settings -------------------------------------------------------------


def _tool_table(ini: _Ini | None, toml: _Toml | None) -> _ToolTable | None:
    in_ini = ini if ini is not None and ini.parser.has_section(TOOL_SECTION) else None
    in_toml = toml.tool if toml is not None else None
    if in_ini is not None and in_toml is not None:
        raise ConfigError(
            f"hindsight-migrate's settings are in two places: [{TOOL_SECTION}] of {in_ini.path} and "
            f"[tool.{TOOL_SECTION}] of {_present(toml).path}. Keep the settings in one place: move them "
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
        return _ToolTable(f"[{TOOL_SECTION}] of {in_ini.path}", in_ini.path.parent, values)
    if in_toml is not None:
        folder = _present(toml).path.parent
        here = folder.as_posix()

        def substituted(value: object) -> object:
            if isinstance(value, str):
                return value.replace("%(here)s", here)
            if isinstance(value, list):
                return [substituted(item) for item in value]
            return value

        return _ToolTable(
            f"[tool.{TOOL_SECTION}] of {_present(toml).path}",
            folder,
            {key: substituted(value) for key, value in in_toml.items()},
        )
    return None


def _settings_from(table: _ToolTable) -> tuple[Path | None, str | None, ToolSettings]:
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
        raise ConfigError(f"{key} in {where} must be {wanted}, not {_kind(value)}.")

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
            f"not {_kind(value)}."
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
        lint_error_rules=rules("lint_error_rules", defaults.lint_error_rules),
        lint_ignore_rules=rules("lint_ignore_rules", defaults.lint_ignore_rules),
        refuse_noop_downgrades=flag("refuse_noop_downgrades", defaults.refuse_noop_downgrades),
        destructive_lock=duration("destructive_lock", defaults.destructive_lock),
        lock_retries=whole_number("lock_retries", defaults.lock_retries, " (of retries; 0 for none)"),
        lock_retry_max_wait=duration("lock_retry_max_wait", defaults.lock_retry_max_wait),
    )
    return bootstrap_sql, text("baseline"), tool


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


# -- the database ------------------------------------------------------------------------


def _resolve_database(
    flag_url: str | None, cwd: Path, ini: _Ini | None, toml: _Toml | None, section: str, project_dir: Path
) -> DatabaseSource:
    if flag_url is not None and not flag_url.strip():
        # An empty --url is a mistake (an unset shell variable, `--url "$DB"`): using another database
        # instead, whatever DATABASE_URL or the ini says, would migrate what was not meant.
        raise ConfigError(
            "--url was given an empty value. Give the database URL (postgresql://USER@HOST:PORT/DATABASE), "
            "or leave --url out to use DATABASE_URL, .env, sqlalchemy.url or the embedded server."
        )
    candidates: list[tuple[str | None, str]] = [
        (flag_url, "--url"),
        (os.environ.get("DATABASE_URL"), "DATABASE_URL (environment)"),
    ]
    dotenv_path = _find_dotenv(cwd)
    if dotenv_path is not None:
        candidates.append((_dotenv_database_url(dotenv_path), f"DATABASE_URL ({dotenv_path})"))
    configured = _configured_url(ini, toml, section)
    if configured is not None:
        candidates.append(configured)

    for raw, origin in candidates:
        if raw is not None and raw.strip():
            if _PLACEHOLDER.match(raw.strip()):
                words = _placeholder_words(raw.strip(), origin, project_dir)
                return DatabaseSource(url=None, origin=origin, unusable=words)
            return DatabaseSource(url=normalize_url(raw.strip(), origin), origin=origin)
    return DatabaseSource(
        url=None,
        origin="embedded server (no database URL configured)",
        embedded_data_dir=project_dir / EMBEDDED_DATA_DIR,
    )


def _configured_url(ini: _Ini | None, toml: _Toml | None, section: str) -> tuple[str, str] | None:
    """(sqlalchemy.url, its origin words) of the ini's section; with no ini, of [tool.alembic]."""
    if ini is not None:
        where = ini.path.name if section == DEFAULT_SECTION else f"{ini.path.name} [{section}]"
        try:
            url = ini.parser.get(section, "sqlalchemy.url", fallback="")
        except configparser.Error as err:
            # configparser quotes the value, password included: say what is wrong, not the value.
            raise ConfigError(
                f"sqlalchemy.url in {where} cannot be read: a '%' in an ini value must be written "
                "'%%' (the file is read with interpolation, as Alembic reads it)."
            ) from err
        return url, f"sqlalchemy.url ({where})"
    if toml is None or toml.alembic is None:
        return None
    # Alembic does not read it from here, but a project may keep it here: honour it, read as Alembic
    # reads every [tool.alembic] value (%(here)s substituted, so a '%' is written '%%'). Unquoted,
    # `sqlalchemy.url = "..."` is a TOML dotted key: {"sqlalchemy": {"url": "..."}}.
    nested = toml.alembic.get("sqlalchemy")
    value = toml.alembic.get("sqlalchemy.url", nested.get("url") if isinstance(nested, dict) else None)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"sqlalchemy.url in [tool.alembic] of {toml.path} must be a string, not {_kind(value)}.")
    try:
        url = value % {"here": toml.path.parent.as_posix()}
    except (KeyError, ValueError, TypeError) as err:
        raise ConfigError(
            f"sqlalchemy.url in [tool.alembic] of {toml.path} cannot be read: a '%' in a [tool.alembic] value "
            "must be written '%%' (Alembic substitutes %(here)s in them)."
        ) from err
    return url, f"sqlalchemy.url ({toml.path.name} [tool.alembic])"


def _placeholder_words(raw: str, origin: str, project_dir: Path) -> str:
    """``alembic init`` writes a URL that names no database: say so, rather than "not PostgreSQL"."""
    # Its "password" is the word `pass`: not remembered as a secret (it would mask "passed" in
    # every line of output); the URL pattern masks it here all the same.
    return (
        f"The database URL from {origin} is the placeholder URL `alembic init` writes ({mask_secrets(raw)}), "
        "not a real database. Say which database to migrate: give --url postgresql://USER@HOST:PORT/DATABASE, "
        "set DATABASE_URL, put the real URL in sqlalchemy.url, or delete the sqlalchemy.url line to use the "
        f"embedded PostgreSQL server (kept in {project_dir / EMBEDDED_DATA_DIR})."
    )


def _dotenv_database_url(path: Path) -> str | None:
    """DATABASE_URL of a .env file; a file python-dotenv cannot read whole is an error, never skipped.

    python-dotenv skips a line it cannot parse with a logged warning: the rest of the file,
    DATABASE_URL included, may then be missing, and another database used without a word.
    """
    import io

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise ConfigError(f"{path} cannot be read: {err.strerror}.") from err
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path} is not UTF-8 text (line {line}). Save it as UTF-8.") from err
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise ConfigError(
                f"{path} line {binding.original.line} cannot be parsed (an unterminated quote, or a line that is "
                "not NAME=value). Fix that line: nothing in the file is used until it parses."
            )
    return dotenv_values(stream=io.StringIO(text)).get("DATABASE_URL")


def _find_dotenv(cwd: Path) -> Path | None:
    for folder in (cwd, *cwd.parents):
        candidate = folder / ".env"
        if candidate.is_file():
            return candidate
    return None


def _refuse_bad_ports(port: int | None, query_port: object, origin: str, shown: str) -> None:
    """A TCP port is 1 to 65535: libpq would refuse another one only when connecting, and call it unreachable.

    ``?port=`` may list one port per host (``host=a,b&port=5432,5433``); an empty item means the default.
    """
    given: list[str] = [] if port is None else [str(port)]
    listed = query_port if isinstance(query_port, (tuple, list)) else () if query_port is None else (query_port,)
    for item in listed:
        given.extend(part.strip() for part in str(item).split(",") if part.strip())
    for value in given:
        if not (value.isdigit() and 1 <= int(value) <= 65535):
            raise ConfigError(
                f"The database URL from {origin} is not a valid URL: its port {value} is not a TCP port (1 to "
                f"65535): {shown!r}. Expected the form postgresql://USER@HOST:PORT/DATABASE (PostgreSQL listens on "
                "5432 unless told otherwise)."
            )


def normalize_url(raw: str, origin: str = "--url") -> str:
    """Validate a PostgreSQL URL and point it at psycopg 3; the result keeps its password.

    Any PostgreSQL driver's URL (``+asyncpg``, ``+psycopg2``, ``+pg8000``, ``postgres://``) names the
    same database: only the driver changes, as the tool always connects with psycopg 3.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    remember_secret_of(raw)  # before anything can quote it back
    shown = mask_secrets(raw)
    _, separator, rest = raw.partition("://")
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    if separator and authority.count("@") > 1:
        # SQLAlchemy splits at the first '@': the rest of the password would become the host name,
        # be printed as one and be looked up in DNS. Nothing of the URL is echoed here.
        raise ConfigError(
            f"The database URL from {origin} has more than one '@' before the host: a password holding '@' "
            "must be percent-encoded, '@' as %40 (postgresql://USER:p%40ss@HOST/DATABASE)."
        )
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
    _refuse_bad_ports(parsed.port, parsed.query.get("port"), origin, shown)
    backend = parsed.drivername.partition("+")[0]
    if backend not in ("postgresql", "postgres"):
        raise ConfigError(
            f"The database URL from {origin} is for {backend!r}; hindsight-migrate works with "
            f"PostgreSQL only ({shown})."
        )
    if not parsed.database:
        raise ConfigError(
            f"The database URL from {origin} names no database ({shown}). Add it at the end: "
            "postgresql://USER@HOST:PORT/DATABASE."
        )
    rendered = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    remember_secret_of(rendered)  # SQLAlchemy may write the password back percent-encoded
    return rendered
