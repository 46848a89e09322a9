"""Finding and reading alembic.ini and pyproject.toml, as Alembic finds them, and what they must say."""

from __future__ import annotations

import configparser
import importlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from hindsight_migrate.config.settings import (
    DEFAULT_INI,
    DEFAULT_SECTION,
    LAYOUTS,
    PYPROJECT,
    TOOL_SECTION,
    IniFile,
    TomlFile,
    kind_of,
    present,
)
from hindsight_migrate.errors import ConfigError
from hindsight_migrate.masking import mask_secrets, remember_secret_of

# -- finding and reading the files -------------------------------------------------------


def find_configuration(config_path: Path | None, here: Path) -> tuple[IniFile | None, TomlFile | None]:
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
    if config_path is None and not ini_path.is_file() and not toml_path.is_file():
        flask_ini = here / FLASK_MIGRATIONS / DEFAULT_INI
        if flask_ini.is_file() and is_flask_migrate(flask_ini.parent):
            ini_path = flask_ini.resolve()  # `flask db` reads migrations/alembic.ini from the project's folder
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


FLASK_MIGRATIONS = "migrations"  # Flask-Migrate's default folder (Migrate(directory=...))


def is_flask_migrate(migrations: Path) -> bool:
    """Whether ``migrations`` is a Flask-Migrate folder: its env.py reads the app from flask's current_app (as
    ``flask db init`` writes it), so it runs only inside the app's context."""
    try:
        env_py = (migrations / "env.py").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "current_app" in env_py and "flask" in env_py


def _read_ini(ini_path: Path) -> IniFile:
    # Same interpolation as Alembic's own Config, so %(here)s means the ini's folder.
    parser = configparser.ConfigParser(defaults={"here": str(ini_path.parent)})
    try:
        with ini_path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as err:
        raise ConfigError(f"Cannot read {ini_path}: {err.strerror}.") from err
    except (configparser.Error, UnicodeDecodeError) as err:
        raise ConfigError(f"{ini_path} is not a valid ini file: {err}") from err
    return IniFile(ini_path, parser)


def _read_toml(toml_path: Path) -> TomlFile:
    data = read_toml_file(toml_path)
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{toml_path} is not a pyproject.toml Alembic can read: 'tool' must be a table.")
    return TomlFile(toml_path, _toml_table(tool, "alembic", toml_path), _toml_table(tool, TOOL_SECTION, toml_path))


def read_toml_file(path: Path) -> dict[str, Any]:
    """A TOML file as a dictionary (a fleet's targets file); unreadable or invalid: a ConfigError that says why."""
    loads, decode_error = _toml_parser(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"Cannot read {path}: {err.strerror}.") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not a valid TOML file: it is not UTF-8 text.") from err
    try:
        return loads(text)
    except decode_error as err:
        # tomllib's message names the line and column, never a value.
        raise ConfigError(f"{path} is not a valid TOML file: {err}") from err


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


def check_layout(ini: IniFile | None, toml: TomlFile | None, section: str) -> None:
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
            f"{present(toml).path} alone, with no alembic.ini beside it ([tool.alembic] has no sections "
            f"to choose from). Leave -n out, or add an alembic.ini with a [{section}] section beside it."
        )
    ini_location = ini.parser.get(section, "script_location", raw=True, fallback="").strip() if ini else ""
    if ini_location or _toml_script_location(toml):
        return
    if ini is not None and is_flask_migrate(ini.path.parent):
        return  # Flask-Migrate's ini names none: the migrations folder is the ini's, as `flask db` sets it
    found: list[str] = []
    if ini is not None:
        found.append(f"{ini.path} has no [{section}] section with a script_location")
    if toml is not None:
        found.append(
            f"{toml.path} has no [tool.alembic] table"
            if toml.alembic is None
            else f"{toml.path} has no script_location in [tool.alembic]"
        )
    parser = ini.parser if ini is not None else None
    others = [
        name
        for name in (parser.sections() if parser is not None else [])
        if parser is not None and parser.get(name, "script_location", raw=True, fallback="").strip()
    ]
    if others:
        # Several environments in one file (alembic -n NAME): the reader is one -n away from the right one.
        named = ", ".join(f"[{name}]" for name in others)
        raise ConfigError(
            f"{'; '.join(found)}. Its sections with a script_location: {named}. Name one with -n NAME "
            f"(hindsight-migrate -n {others[0]} ...), as alembic -n NAME does."
        )
    raise ConfigError(f"{'; '.join(found)}, so nothing says where the migrations are. {LAYOUTS}")


def _toml_script_location(toml: TomlFile | None) -> str:
    if toml is None or toml.alembic is None:
        return ""
    value = toml.alembic.get("script_location")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(
            f"script_location in [tool.alembic] of {toml.path} must be a string (the migrations folder), "
            f"not {kind_of(value)}."
        )
    return value.strip()


def _listed_databases(ini: IniFile, section: str) -> tuple[str, list[tuple[str, str | None, str | None]]]:
    """The multidb template's ``databases = engine1, engine2`` as written, and each name with its section's
    sqlalchemy.url, or what is wrong with it."""
    listed = ini.parser.get(section, "databases", raw=True, fallback="").strip()
    found: list[tuple[str, str | None, str | None]] = []
    for name in (part.strip() for part in re.split(r",\s*", listed) if listed):  # as the template's env.py splits
        if not name:
            continue
        if not ini.parser.has_section(name):
            found.append((name, None, "no such section"))
            continue
        try:
            url = ini.parser.get(name, "sqlalchemy.url", fallback="").strip()
        except configparser.Error:
            found.append((name, None, "a sqlalchemy.url that cannot be read: write '%' as '%%'"))
            continue
        if not url:
            found.append((name, None, "no sqlalchemy.url"))
            continue
        remember_secret_of(url)  # before anything can quote it back
        found.append((name, url, None))
    return listed, found


def multidb_databases(ini: IniFile, section: str) -> tuple[tuple[str, str], ...]:
    """The multidb template's databases, each with its section's sqlalchemy.url; () when the section lists none.
    A name without a section or a URL is refused, saying which."""
    listed, found = _listed_databases(ini, section)
    problems = [f"[{name}] ({problem})" for name, _, problem in found if problem is not None]
    if problems:
        raise ConfigError(
            f"{ini.path} [{section}] lists databases = {listed}, but not each of them can be used: "
            f"{'; '.join(problems)}. Give each listed database a section with its sqlalchemy.url."
        )
    return tuple((name, url) for name, url, _ in found if url is not None)


def refuse_multidb(ini: IniFile, section: str) -> None:
    """The multidb template's ``databases = engine1, engine2``: one run would migrate each of them."""
    listed, found = _listed_databases(ini, section)
    if not listed:
        return
    described = [f"[{name}] {mask_secrets(url)}" if url else f"[{name}] ({problem})" for name, url, problem in found]
    raise ConfigError(
        f"{ini.path} [{section}] lists several databases (databases = {listed}), so its env.py migrates "
        f"each of them in one run: {'; '.join(described)}. hindsight-migrate up and down drive one database per "
        "run: run this project as a fleet of its databases (hindsight-migrate fleet plan, fleet up, fleet status: "
        "each database reviewed and applied on its own), or point the tool at one database with a "
        "single-database configuration (an ini section of its own with sqlalchemy.url and script_location, "
        "selected with -n SECTION)."
    )
