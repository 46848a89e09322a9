"""Which models env.py's target_metadata sees, and which its package defines that it does not see.

pytest-alembic's experimental test_all_models_register_on_metadata: a model module that nothing imports when
env.py runs is a table autogenerate never compares, so a revision is never written for it. The models' package
is the one the classes mapped to target_metadata live in; every module of it is imported in a clean Python
process (this one must not run the project's modules, nor keep what they register), and the tables mapped there
that target_metadata lacks are named, with their module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.orm.mapper import _mapper_registries

from hindsight_migrate.errors import ProjectCodeFailed, Section
from hindsight_migrate.masking import mask_secrets


@dataclass(frozen=True)
class ModelsSeen:
    """What env.py's target_metadata holds, and where its models come from."""

    package: str | None  # the package of the modules mapping classes to it; None: no package (a module alone)
    tables: frozenset[str]  # the metadata's tables, schema-qualified where they name a schema
    path: tuple[str, ...]  # sys.path as env.py left it: where the project's modules import from
    migrations: str  # the migrations folder: its modules (env.py, the revisions) run under Alembic only


def models_seen(metadata: Any, migrations: str) -> ModelsSeen | None:
    """The package of the ORM classes mapped to ``metadata`` (a MetaData env.py gave Alembic), or None."""
    metadatas = [metadata] if isinstance(metadata, MetaData) else [m for m in metadata or () if isinstance(m, MetaData)]
    if not metadatas:
        return None
    modules = sorted(
        {
            mapper.class_.__module__
            for registry in list(_mapper_registries)
            if any(registry.metadata is m for m in metadatas)
            for mapper in registry.mappers
        }
    )
    packages = {(sys.modules[name].__package__ or "") if name in sys.modules else "" for name in modules}
    packages.discard("")
    # The shortest: models in myapp.models and myapp.models.billing are myapp.models's.
    package = min(packages, key=len) if packages else None
    tables = frozenset(key for m in metadatas for key in m.tables)
    home = getattr(sys.modules.get(package or ""), "__file__", None)
    if home and _inside(Path(home).parent, Path(migrations)):
        package = None  # models kept in the migrations folder: env.py imports them itself, nothing to walk
    return ModelsSeen(package, tables, tuple(sys.path), migrations)


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


_IMPORT_EVERY_MODULE = """
import importlib, json, os, pkgutil, sys
migrations = os.path.realpath(sys.argv[2])
def inside(path):
    return os.path.realpath(path or "").startswith(migrations + os.sep) or os.path.realpath(path or "") == migrations
package = importlib.import_module(sys.argv[1])
if inside(os.path.dirname(getattr(package, "__file__", None) or "")):
    print("{}")  # models kept in the migrations folder: env.py imports them itself
    sys.exit(0)
for module in pkgutil.walk_packages(getattr(package, "__path__", []), sys.argv[1] + "."):
    if inside(getattr(module.module_finder, "path", "")):
        continue
    importlib.import_module(module.name)
from sqlalchemy.orm.mapper import _mapper_registries
found = {}
for registry in list(_mapper_registries):
    for mapper in registry.mappers:
        if mapper.class_.__module__.split(".")[0] != sys.argv[1].split(".")[0]:
            continue  # another library's models, imported along
        table = getattr(mapper, "local_table", None)
        if table is not None and hasattr(table, "key"):
            found[table.key] = mapper.class_.__module__
print(json.dumps(found))
"""


def unregistered_models(seen: ModelsSeen, *, timeout: float = 60) -> dict[str, str]:
    """Tables the models' package maps that target_metadata does not hold: table -> the module defining it.
    Imports the project's modules, in a process of its own; connects nowhere itself."""
    if seen.package is None:
        return {}
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in seen.path if path)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _IMPORT_EVERY_MODULE, seen.package, seen.migrations],
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as err:
        raise ProjectCodeFailed(
            f"Importing every module of {seen.package} (to find models env.py does not see) took over {timeout:g} s; "
            "one of them does work at import. This is the project's code.",
        ) from err
    if done.returncode != 0:
        raise ProjectCodeFailed(
            f"Importing every module of {seen.package}, to find models env.py does not see, failed. This is the "
            "project's code: a module of its models' package cannot be imported on its own.",
            sections=(Section("Python said", mask_secrets(done.stderr.strip()[-2000:])),),
        )
    found: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return {table: module for table, module in sorted(found.items()) if table not in seen.tables}
