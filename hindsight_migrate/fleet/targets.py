"""Where the fleet's targets come from: a TOML file naming each database, a query on a control database,
or, for schema-per-tenant, one database and its tenants' schemas (listed, or read by a query).

The file never needs a secret: each URL may be named by the environment variable holding it (``url_env``).
Reads files and, for a query, the control database (read-only).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hindsight_migrate.config import Settings, normalize_url
from hindsight_migrate.config.files import read_toml_file
from hindsight_migrate.errors import ConfigError
from hindsight_migrate.fleet.model import Shard, Target
from hindsight_migrate.postgres import fleet_sql

# A target's name is a key in ledgers, file names and shard hashes: printable, no control characters.
_NAME = re.compile(r"^[A-Za-z0-9_.:@/+-][A-Za-z0-9_.:@/+ -]{0,199}$")
DEFAULT_TARGETS_FILE = Path("fleet.toml")


@dataclass(frozen=True)
class Fleet:
    """The targets, in the file's (or the query's) order, and the control database if one is named."""

    source: Path
    targets: tuple[Target, ...]
    control_url: str | None = None  # the control database: the fleet ledger and the shared error budget
    x_argument: str = "tenant"  # schema-per-tenant: env.py reads the schema as -x tenant=SCHEMA

    def sharded(self, shard: Shard | None, labels: tuple[str, ...] = ()) -> tuple[Target, ...]:
        """The targets of ``shard`` (all: None), those with one of ``labels`` (or in a group of that name) only."""
        targets = self.targets
        if labels:
            targets = tuple(t for t in targets if t.group in labels or set(t.labels) & set(labels))
        return targets if shard is None else shard.share(targets)

    def named(self, names: tuple[str, ...]) -> tuple[Target, ...]:
        known = {t.name: t for t in self.targets}
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ConfigError(f"{self.source} names no target {', '.join(map(repr, unknown))} (asked by --canary).")
        return tuple(known[name] for name in names)


def load_fleet(path: Path) -> Fleet:
    """Reads ``path`` (and the control database, when the file asks a query of it)."""
    if not path.is_file():
        raise ConfigError(
            f"No targets file at {path}. Write one (see the README's 'Fleets' section) naming each database:\n"
            '[[targets]]\nname = "tenant-001"\nurl_env = "TENANT_001_URL"'
        )
    document = read_toml_file(path)
    known = {"targets", "control", "schemas"}
    unknown = sorted(set(document) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key {', '.join(unknown)} (known: {', '.join(sorted(known))}).")
    control = document.get("control")
    control_url = None
    targets: list[Target] = []
    if control is not None:
        table = _table(control, "[control]", path)
        control_url = _url_of(table, "[control]", path)
        query = table.get("query")
        if query is not None:
            targets.extend(_from_query(control_url, _text(query, "[control] query", path), path))
    for index, entry in enumerate(_list(document.get("targets", []), "[[targets]]", path)):
        targets.append(_target(_table(entry, f"[[targets]] #{index + 1}", path), index, path))
    x_argument = "tenant"
    if "schemas" in document:
        schemas_table = _table(document["schemas"], "[schemas]", path)
        x_argument = _text(schemas_table.get("x_argument", "tenant"), "[schemas] x_argument", path)
        targets.extend(_schema_targets(schemas_table, path))
    if not targets:
        raise ConfigError(f"{path} names no target: add [[targets]], a [control] query or [schemas].")
    seen: set[str] = set()
    for target in targets:
        if target.name in seen:
            raise ConfigError(f"{path}: the target name {target.name!r} is used twice; names must be unique.")
        seen.add(target.name)
    return Fleet(source=path, targets=tuple(targets), control_url=control_url, x_argument=x_argument)


def multidb_fleet(settings: Settings) -> Fleet:
    """An ``alembic init -t multidb`` project as a fleet of the databases its ini lists, each run on its own."""
    targets = tuple(
        Target(name=name, url=normalize_url(url, f"sqlalchemy.url of [{name}] in {settings.config_path}"), engine=name)
        for name, url in settings.multidb
    )
    return Fleet(source=settings.config_path, targets=targets)


def _target(entry: Mapping[str, Any], index: int, path: Path) -> Target:
    where = f"[[targets]] #{index + 1}"
    allowed = {"name", "url", "url_env", "group", "labels", "schema"}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(
            f"{path}: {where} has unknown key {', '.join(unknown)} (known: {', '.join(sorted(allowed))})."
        )
    name = _name(entry.get("name"), where, path)
    labels = entry.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise ConfigError(f"{path}: labels of target {name!r} must be a list of strings.")
    group = entry.get("group")
    if group is not None:
        group = _text(group, f"group of target {name!r}", path)
    schema = entry.get("schema")
    if schema is not None:
        schema = _text(schema, f"schema of target {name!r}", path)
    return Target(
        name=name,
        url=_url_of(entry, f"target {name!r}", path),
        group=group,
        labels=tuple(labels),
        schema=schema,
    )


def _schema_targets(table: Mapping[str, Any], path: Path) -> list[Target]:
    url = _url_of(table, "[schemas]", path)
    names = table.get("names")
    query = table.get("query")
    if (names is None) == (query is None):
        raise ConfigError(f'{path}: [schemas] needs names = [...] or query = "SELECT ..." (one of them).')
    if query is not None:
        schemas = fleet_sql.schema_names(url, _text(query, "[schemas] query", path), str(path))
    else:
        schemas = tuple(_text(name, "[schemas] names", path) for name in _list(names, "[schemas] names", path))
    group = table.get("group")
    return [
        Target(
            name=_name(schema, "[schemas]", path),
            url=url,
            schema=schema,
            group=group if isinstance(group, str) else None,
        )
        for schema in schemas
    ]


def _from_query(control_url: str, query: str, path: Path) -> list[Target]:
    rows = fleet_sql.target_rows(control_url, query, str(path))
    targets = []
    for row in rows:
        name = _name(row.name, "[control] query", path)
        targets.append(
            Target(
                name=name,
                url=normalize_url(row.url, f"the [control] query of {path} (target {name!r})"),
                group=row.group,
                schema=row.schema,
            )
        )
    return targets


def _url_of(table: Mapping[str, Any], where: str, path: Path) -> str:
    url, env = table.get("url"), table.get("url_env")
    if (url is None) == (env is None):
        raise ConfigError(f'{path}: {where} needs url = "postgresql://..." or url_env = "VARIABLE" (one of them).')
    if env is not None:
        variable = _text(env, f"url_env of {where}", path)
        value = os.environ.get(variable)
        if value is None or not value.strip():
            raise ConfigError(f"{path}: {where} takes its URL from ${variable}, which is not set (or empty).")
        return normalize_url(value.strip(), f"${variable} ({where} in {path})")
    return normalize_url(_text(url, f"url of {where}", path), f"{where} in {path}")


def _name(value: object, where: str, path: Path) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(
            f"{path}: {where} needs a name: letters, digits and _ . : @ / + - (up to 200), not {value!r}."
        )
    return value


def _text(value: object, where: str, path: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{path}: {where} must be a non-empty string.")
    return value


def _table(value: object, where: str, path: Path) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: {where} must be a table.")
    return value


def _list(value: object, where: str, path: Path) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{path}: {where} must be a list.")
    return value
