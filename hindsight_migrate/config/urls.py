"""The database URL: where it comes from (--url, DATABASE_URL, .env, sqlalchemy.url, the embedded server),
checked and normalised to psycopg 3.
"""

from __future__ import annotations

import configparser
import os
from pathlib import Path

from hindsight_migrate.config.settings import (
    DEFAULT_SECTION,
    EMBEDDED_DATA_DIR,
    PLACEHOLDER,
    DatabaseSource,
    IniFile,
    TomlFile,
    kind_of,
)
from hindsight_migrate.errors import ConfigError
from hindsight_migrate.masking import mask_secrets, remember_secret_of

# -- the database ------------------------------------------------------------------------


def resolve_database(
    flag_url: str | None, cwd: Path, ini: IniFile | None, toml: TomlFile | None, section: str, project_dir: Path
) -> DatabaseSource:
    if flag_url is not None and not flag_url.strip():
        # An empty --url is a mistake (an unset shell variable, `--url "$DB"`): using another database
        # instead, whatever DATABASE_URL or the ini says, would migrate what was not meant.
        raise ConfigError(
            "--url was given an empty value. Give the database URL (postgresql://USER@HOST:PORT/DATABASE), "
            "or leave --url out to use DATABASE_URL, .env, sqlalchemy.url or the embedded server."
        )
    named: list[tuple[str | None, str]] = [
        (flag_url, "--url"),
        (os.environ.get("DATABASE_URL"), "DATABASE_URL (environment)"),
    ]
    dotenv_path = _find_dotenv(cwd)
    if dotenv_path is not None:
        named.append((_dotenv_database_url(dotenv_path), f"DATABASE_URL ({dotenv_path})"))
    for raw, origin in named:
        if raw is not None and raw.strip():
            if PLACEHOLDER.match(raw.strip()):
                words = _placeholder_words(raw.strip(), origin, project_dir)
                return DatabaseSource(url=None, origin=origin, unusable=words)
            return _source(raw.strip(), origin)

    embedded_data_dir = project_dir / EMBEDDED_DATA_DIR
    configured = _configured_url(ini, toml, section)
    if configured is not None and configured[0].strip():
        raw, origin = configured[0].strip(), configured[1]
        if not PLACEHOLDER.match(raw):
            return _source(raw, origin)
        # Many env.py files never read sqlalchemy.url (they build the URL from the app's settings): the
        # placeholder is refused only if env.py names no database of its own (see from_env_py).
        words = _placeholder_words(raw, origin, project_dir)
        return DatabaseSource(
            url=None, origin=origin, unusable=words, embedded_data_dir=embedded_data_dir, ask_env_py=True
        )
    return DatabaseSource(
        url=None,
        origin="embedded server (no database URL configured)",
        embedded_data_dir=embedded_data_dir,
        ask_env_py=True,
    )


def from_env_py(source: DatabaseSource, asked: str | None, env_py: str) -> DatabaseSource:
    """The database when nobody named one: the one env.py hands SQLAlchemy's engine factory, if it names one.

    ``asked`` is that URL (None: env.py built no engine, or one from a configuration with no URL);
    ``env_py`` is its path as shown. The placeholder, or no URL, leaves ``source`` as it was: the
    embedded server, or the placeholder's refusal.
    """
    if asked is None or not asked.strip() or PLACEHOLDER.match(asked.strip()):
        return source
    return _source(asked.strip(), f"the URL env.py builds ({env_py})")


def _source(raw: str, origin: str) -> DatabaseSource:
    return DatabaseSource(url=normalize_url(raw, origin), origin=origin, written=raw)


def _configured_url(ini: IniFile | None, toml: TomlFile | None, section: str) -> tuple[str, str] | None:
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
        raise ConfigError(f"sqlalchemy.url in [tool.alembic] of {toml.path} must be a string, not {kind_of(value)}.")
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
