"""The revision graph, remembered between runs so ``history --offline`` need not load Alembic.

Loading the graph means importing Alembic and SQLAlchemy and executing every revision file:
most of a second on a long chain. After Alembic has loaded it, the facts ``history`` shows
(the :class:`RevisionInfo` of every revision, the heads and the bases) are written as JSON
under ``<project>/.hindsight/cache/``, together with a fingerprint of everything they were
read from: alembic.ini's size and times, and the name, size and times of every file in the
folders Alembic read revision files from. A later run that finds the same fingerprint uses
the JSON and never imports Alembic; any difference, and any problem with the cache itself,
means Alembic loads the graph as before (and the cache is written again). The cache can
make a command faster, never different: it is not consulted for anything but the graph.

This module must not import Alembic or SQLAlchemy, even indirectly: that is its point.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hindsight_migrate import __version__
from hindsight_migrate.revisions import GraphSources, RevisionInfo

if TYPE_CHECKING:
    from hindsight_migrate.alembic_api import AlembicProject

CACHE_DIR = Path(".hindsight") / "cache"
FORMAT = 3  # bump whenever what is stored, or how it is read, changes

# A file changed again within the same tick of the file system's clock keeps its mtime; if
# that happens between our fingerprint and Alembic's read, the cache would keep the old
# contents. Graphs with a file younger than this are therefore not cached (git's "racily
# clean" problem); the next run, a moment later, caches them.
SETTLE_NS = 2_000_000_000


@dataclass(frozen=True)
class Graph:
    """What ``history`` shows of the revision graph: every revision, newest first, heads and bases."""

    revisions: tuple[RevisionInfo, ...]
    heads: tuple[str, ...]
    bases: tuple[str, ...]


class _Stale(Exception):
    """The cache cannot be used: missing, unreadable, written by another version, or out of date."""


def load_graph(project: AlembicProject) -> Graph:
    """The revision graph: from the cache when nothing it came from changed, else from Alembic.

    Writes no database; may write the cache file. Alembic's errors (a revision file that does
    not compile, a broken graph) are raised exactly as without the cache: a file being edited
    changes the fingerprint, so a broken file is always read by Alembic.
    """
    settings = project.settings
    path = cache_path(settings.project_dir, settings.config_path, settings.ini_section)
    toml_path = _other_toml(settings.config_path, settings.toml_path)
    try:
        return _read(path, settings.config_path, toml_path, settings.ini_section)
    except _Stale:
        pass
    sources = project.graph.sources()
    try:
        # Taken before Alembic reads the files: an edit made while it reads shows up next time.
        fingerprint: dict[str, Any] | None = _fingerprint(settings.config_path, toml_path, sources)
    except (OSError, ValueError):  # a folder that cannot be listed: no cache this time
        fingerprint = None
    graph = Graph(revisions=project.graph.revisions(), heads=project.graph.heads(), bases=project.graph.bases())
    if fingerprint is not None and _settled(fingerprint):
        with contextlib.suppress(OSError, ValueError, TypeError):
            _write(path, _document(settings.config_path, settings.ini_section, sources, fingerprint, graph))
    return graph


def cache_path(project_dir: Path, ini_path: Path, ini_section: str) -> Path:
    """One file per alembic.ini and section: two configurations of one project do not share a graph."""
    key = hashlib.sha256(f"{ini_path}\0{ini_section}".encode()).hexdigest()[:16]
    return project_dir / CACHE_DIR / f"graph-{key}.json"


# -- reading -----------------------------------------------------------------------------


def _other_toml(config_path: Path, toml_path: Path | None) -> Path | None:
    """pyproject.toml when Alembic reads it beside the ini (its [tool.alembic] may name the folders)."""
    return toml_path if toml_path is not None and toml_path != config_path else None


def _read(path: Path, ini_path: Path, toml_path: Path | None, ini_section: str) -> Graph:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as err:  # missing, unreadable, not JSON
        raise _Stale from err
    try:
        if document["format"] != FORMAT or document["versions"] != _versions():
            raise _Stale
        if document["ini_path"] != str(ini_path) or document["ini_section"] != ini_section:
            raise _Stale  # another file hashed to the same name
        stored = document["sources"]
        sources = GraphSources(
            script_dir=Path(_str(stored["script_dir"])),
            version_locations=tuple(Path(_str(folder)) for folder in _list(stored["version_locations"])),
            recursive=_bool(stored["recursive"]),
            sourceless=_bool(stored["sourceless"]),
            relative_to_cwd=_bool(stored["relative_to_cwd"]),
        )
        if document["fingerprint"] != _fingerprint(ini_path, toml_path, sources):
            raise _Stale
        graph = document["graph"]
        return Graph(
            revisions=tuple(_revision(entry) for entry in _list(graph["revisions"])),
            heads=_strings(graph["heads"]),
            bases=_strings(graph["bases"]),
        )
    except (KeyError, TypeError, ValueError, OSError) as err:  # a file of the right name but not ours
        raise _Stale from err


def _revision(entry: Any) -> RevisionInfo:
    created = entry["created"]
    return RevisionInfo(
        revision=_str(entry["revision"]),
        parents=_strings(entry["parents"]),
        children=_strings(entry["children"]),
        message=_str(entry["message"]),
        created=None if created is None else _str(created),
        path=Path(_str(entry["path"])),
        branch_labels=_strings(entry["branch_labels"]),
        is_head=_bool(entry["is_head"]),
        is_base=_bool(entry["is_base"]),
        is_branch_point=_bool(entry["is_branch_point"]),
        is_merge_point=_bool(entry["is_merge_point"]),
    )


# Strict on types, so a file that parses but is not what we wrote is stale, not half-believed.
def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(value)
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(value)
    return value


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(_str(item) for item in _list(value))


# -- the fingerprint ---------------------------------------------------------------------


def _fingerprint(ini_path: Path, toml_path: Path | None, sources: GraphSources) -> dict[str, Any]:
    """What the graph was read from, as JSON-shaped data; cheap: a stat per file, no imports.

    mtime, size and ctime of alembic.ini (and of the pyproject.toml read beside it, whose
    [tool.alembic] may name the folders) and of every file in the version locations, walked
    the way Alembic walks them. ctime too because a copy that preserves times (``cp -p``,
    ``tar x``, rsync) can give a changed file its old mtime, but not its old ctime.
    """
    return {
        "ini": _stat(ini_path),
        "toml": None if toml_path is None else _stat(toml_path),
        # A relative location means other folders from another working directory.
        "cwd": os.getcwd() if sources.relative_to_cwd else None,
        # Alembic refuses a script_location that is gone, even when the versions live elsewhere.
        "script_dir": os.path.exists(sources.script_dir),
        "locations": [
            [str(folder), _listing(folder, recursive=sources.recursive, sourceless=sources.sourceless)]
            for folder in sources.version_locations
        ],
    }


def _stat(path: Path | os.DirEntry[str]) -> list[int]:
    """[mtime_ns, size, ctime_ns]; a dangling link counts as the link itself."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        stat = path.stat(follow_symlinks=False)
    return [stat.st_mtime_ns, stat.st_size, stat.st_ctime_ns]


def _listing(folder: Path, *, recursive: bool, sourceless: bool) -> list[list[Any]] | None:
    """Every file Alembic could read as a revision, by relative name, sorted; None if there is no folder.

    Mirrors ``Script._list_py_dir``: ``__pycache__`` only counts when sourceless (Python
    writes .pyc files there as Alembic imports the revisions, which must not look like a
    change), and subfolders only when recursive. Listing more than Alembic reads is safe
    (at worst a needless reload); listing less is not.
    """
    if not folder.is_dir():
        return None  # Alembic skips a missing location; it appearing later is a change
    found: list[list[Any]] = []
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(folder / relative) as entries:
            for entry in entries:
                name = f"{relative}{entry.name}"
                if not entry.is_dir():
                    found.append([name, *_stat(entry)])
                elif entry.name == "__pycache__":
                    if sourceless:
                        with os.scandir(entry.path) as compiled:
                            found.extend([f"{name}/{c.name}", *_stat(c)] for c in compiled if not c.is_dir())
                elif recursive and not entry.is_symlink():  # Alembic does not follow linked folders
                    pending.append(f"{name}/")
    return sorted(found)


def _settled(fingerprint: dict[str, Any]) -> bool:
    """Whether every file is older than the file system's clock tick: see SETTLE_NS."""
    mtimes: list[int] = [fingerprint["ini"][0]] + ([fingerprint["toml"][0]] if fingerprint["toml"] else [])
    for _, listing in fingerprint["locations"]:
        mtimes += [mtime for _, mtime, *_ in listing or ()]
    return max(mtimes) < time.time_ns() - SETTLE_NS


def _versions() -> dict[str, str | None]:
    """This tool's, Alembic's and Python's versions: another of any may read the same files differently."""
    return {
        "hindsight_migrate": __version__,
        "alembic": _alembic_version(),
        "python": ".".join(str(part) for part in sys.version_info[:3]),
    }


def _alembic_version() -> str | None:
    """The installed Alembic's version, from its metadata (importing Alembic is what the cache avoids)."""
    try:
        return version("alembic")
    except PackageNotFoundError:  # Alembic importable without metadata: no version to compare, no cache
        return None


# -- writing -----------------------------------------------------------------------------


def _document(
    ini_path: Path, ini_section: str, sources: GraphSources, fingerprint: dict[str, Any], graph: Graph
) -> dict[str, Any]:
    versions = _versions()
    if versions["alembic"] is None:
        raise ValueError("Alembic's version is unknown: a cache could not tell an upgrade apart")
    return {
        "format": FORMAT,
        "versions": versions,
        "ini_path": str(ini_path),
        "ini_section": ini_section,
        "sources": {
            "script_dir": str(sources.script_dir),
            "version_locations": [str(folder) for folder in sources.version_locations],
            "recursive": sources.recursive,
            "sourceless": sources.sourceless,
            "relative_to_cwd": sources.relative_to_cwd,
        },
        "fingerprint": fingerprint,
        "graph": {
            "revisions": [_revision_document(info) for info in graph.revisions],
            "heads": list(graph.heads),
            "bases": list(graph.bases),
        },
    }


def _revision_document(info: RevisionInfo) -> dict[str, Any]:
    return {
        "revision": info.revision,
        "parents": list(info.parents),
        "children": list(info.children),
        "message": info.message,
        "created": info.created,
        "path": str(info.path),
        "branch_labels": list(info.branch_labels),
        "is_head": info.is_head,
        "is_base": info.is_base,
        "is_branch_point": info.is_branch_point,
        "is_merge_point": info.is_merge_point,
    }


def _write(path: Path, document: dict[str, Any]) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True)
        # Like .pytest_cache: git ignores the folder even where .hindsight/ is not in .gitignore.
        (path.parent / ".gitignore").write_text("# Created by hindsight-migrate: a cache, never committed.\n*\n")
    umask = os.umask(0)
    os.umask(umask)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(document, stream, ensure_ascii=False, separators=(",", ":"))
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's file is private; a cache need not be
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
