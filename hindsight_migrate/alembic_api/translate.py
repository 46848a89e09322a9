"""The one place Alembic's errors, and exceptions from the project's own code, become ours.

Alembic's graph and loading errors become :class:`RevisionProblem` (as Alembic's own
``_catch_revision_errors`` turns its internal errors into ``CommandError``). An exception
raised by the project's code — env.py, a revision's ``upgrade()``/``downgrade()``, a revision
module at import, a models module they import — becomes :class:`ProjectCodeFailed`, naming the
exception, the innermost frame inside the project's files and what was running, so the reader
knows it is theirs to fix and where. Whatever is left (an exception raised in the tool's own
code) stays an internal error: that one is ours.
"""

from __future__ import annotations

import functools
import site
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hindsight_migrate.errors import (
    HindsightMigrateError,
    NoTargetMetadata,
    ProjectCodeFailed,
    Refused,
    RevisionProblem,
    Section,
)
from hindsight_migrate.masking import mask_secrets

_TOOL_DIR = Path(__file__).resolve().parents[1]  # the hindsight_migrate package


@dataclass(frozen=True)
class ProjectFiles:
    """Which files are the project's: under its folders, and not an installed package (nor the tool)."""

    roots: tuple[Path, ...]  # the config file's folder, script_location, version locations
    display_root: Path  # paths are shown relative to this (the config file's folder)
    revision_folders: tuple[Path, ...] = ()  # the version locations: a file there is a revision file

    def owns(self, filename: str) -> bool:
        if not filename or filename.startswith("<"):
            return False
        path = Path(filename).resolve()
        if _inside(path, (_TOOL_DIR, *_installed_locations())):
            return False
        return _inside(path, self.roots)

    def shown(self, filename: str) -> str:
        path = Path(filename).resolve()
        try:
            return str(path.relative_to(self.display_root))
        except ValueError:
            return str(path)

    def is_revision_file(self, filename: str) -> bool:
        """A file Alembic reads as a revision (in a version location), not env.py nor a module they import."""
        if not filename or filename.startswith("<") or Path(filename).name == "env.py":
            return False
        return _inside(Path(filename).resolve().parent, self.revision_folders)


@contextmanager
def alembic_errors(files: ProjectFiles, doing: Callable[[], str]) -> Iterator[None]:
    """Translate what Alembic and the project's code raise inside the block.

    ``doing`` says, when asked after a failure, what was running ("revision 1a2b's upgrade()",
    "env.py", "Alembic loading the revision files"). Database errors (SQLAlchemy's
    ``DBAPIError``) pass through: the callers turn them into a failed statement with the
    database's words, the statement and where the database stands.
    """
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except (HindsightMigrateError, DBAPIError, KeyboardInterrupt):
        raise
    except SyntaxError as err:
        raise _does_not_compile(err, files, doing) from err
    except (RevisionError, CommandError) as err:
        if isinstance(err, CommandError) and "does not provide a MetaData" in str(err):
            # `alembic init` writes target_metadata = None: a project without models, not a broken one.
            raise NoTargetMetadata(
                "env.py gives Alembic no target_metadata (alembic init writes `target_metadata = None`), so there "
                "are no models to compare with the database. Set target_metadata in env.py to your models' "
                "MetaData (e.g. `from myapp.models import Base; target_metadata = Base.metadata`); for a "
                "hand-written revision use hindsight-migrate new \"...\" --empty.",
            ) from err
        if isinstance(err, CommandError) and "expected to match one row" in str(err):
            # Alembic moving the version table found it holding other rows than the graph says (a row
            # added by hand, a table without its primary key): the database's table, not env.py.
            raise Refused(
                "The version table does not hold the rows Alembic expects, so the revision's transaction was "
                "rolled back. Someone changed alembic_version by hand, or another tool writes it: see "
                "hindsight-migrate status, make the table hold one row per head, then run again.",
                sections=(Section("Alembic said", mask_secrets(str(err))),),
            ) from err
        if _innermost_project_frame(err, files) is not None and not isinstance(err, RevisionError):
            # Alembic refusing what the project's code asked of it (context.configure(), op.*).
            raise _project_failed(err, files, doing()) from err
        raise RevisionProblem(f"Alembic cannot use the revision graph: {err}") from err
    except AssertionError as err:
        if _innermost_project_frame(err, files) is not None:
            raise _project_failed(err, files, doing()) from err
        # Alembic asserts on some malformed identifiers ('', 'rev@', 'head+1@x') instead of raising.
        raise RevisionProblem(
            "That is not a revision identifier Alembic can read. Name a revision id, a unique prefix, "
            "head(s), base or +N/-N (see hindsight-migrate history)."
        ) from err
    except (Exception, SystemExit) as err:
        if _raised_by_the_tool(err) or _innermost_project_frame(err, files) is None:
            raise
        raise _project_failed(err, files, doing()) from err


def raised_in_project(err: BaseException, files: ProjectFiles) -> bool:
    """The exception passed through the project's code (env.py, a revision, a module they import)."""
    return _innermost_project_frame(err, files) is not None


def _does_not_compile(err: SyntaxError, files: ProjectFiles, doing: Callable[[], str]) -> HindsightMigrateError:
    """A revision file that does not compile is a revision problem (exit 5); env.py or a module it imports is
    the project's code (exit 14), named with its line as any other exception of theirs."""
    filename = err.filename or ""
    if files.is_revision_file(filename):
        return RevisionProblem(
            f"A revision file does not compile: {filename}, line {err.lineno}: {err.msg}. Fix the file and run again."
        )
    if files.owns(filename):
        where = f"{files.shown(filename)}, line {err.lineno}"
        source = (err.text or "").strip()
        return ProjectCodeFailed(
            f"The project's code does not compile: {where}: {err.msg}, {doing()}. This is the project's code, "
            "not hindsight-migrate: fix it and run again.",
            sections=(
                Section("Exception", f"{type(err).__name__}: {err.msg}"),
                Section("Where", f"{files.shown(filename)}:{err.lineno}" + (f"\n    {source}" if source else "")),
            ),
        )
    if _innermost_project_frame(err, files) is not None:  # compile()/eval() of a string in their code
        return _project_failed(err, files, doing())
    return RevisionProblem(
        f"A revision file does not compile: {filename}, line {err.lineno}: {err.msg}. Fix the file and run again."
    )


def _project_failed(err: BaseException, files: ProjectFiles, doing: str) -> ProjectCodeFailed:
    frame = _innermost_project_frame(err, files)
    assert frame is not None
    where = f"{files.shown(frame.filename)}, line {frame.lineno}, in {frame.name}"
    exception = mask_secrets(_exception_words(err))
    missing = _missing_package(err)
    if missing is not None:
        headline = (
            f"The project's code imports {missing!r}, which is not installed in this environment "
            f"({doing}; {where}). Install it where hindsight-migrate runs (pip install …) and run again."
        )
    else:
        headline = (
            f"The project's code raised {type(err).__name__} ({doing}), at {where}. This is the project's "
            "code, not hindsight-migrate: fix it and run again."
        )
    frames = [f for f in traceback.extract_tb(err.__traceback__) if files.owns(f.filename)]
    trail = "\n".join(
        f"{files.shown(f.filename)}:{f.lineno} in {f.name}" + (f"\n    {f.line.strip()}" if f.line else "")
        for f in frames[-6:]
    )
    return ProjectCodeFailed(
        headline,
        sections=(
            Section("Exception", exception),
            Section("Where (the project's frames, innermost last)", trail),
        ),
    )


def _exception_words(err: BaseException) -> str:
    if isinstance(err, SystemExit):
        return f"SystemExit: sys.exit({err.code!r}) was called"
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _missing_package(err: BaseException) -> str | None:
    if isinstance(err, ModuleNotFoundError) and err.name:
        return err.name.partition(".")[0]
    # SQLAlchemy's asyncio extension says it needs greenlet with a plain ImportError.
    if isinstance(err, ImportError) and "greenlet" in str(err):
        return "greenlet"
    return None


def _innermost_project_frame(err: BaseException, files: ProjectFiles) -> traceback.FrameSummary | None:
    for frame in reversed(traceback.extract_tb(err.__traceback__)):
        if files.owns(frame.filename):
            return frame
    return None


def _raised_by_the_tool(err: BaseException) -> bool:
    """The innermost frame is the tool's own code: a bug of ours, not the project's."""
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and _inside(Path(frames[-1].filename).resolve(), (_TOOL_DIR,))


@functools.cache
def _installed_locations() -> tuple[Path, ...]:
    """Where installed packages live: a virtual environment inside the project is not the project's code."""
    places = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        places.add(user_site)
    return tuple(Path(place).resolve() for place in places if place)


def _inside(path: Path, folders: Iterable[Path]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)
