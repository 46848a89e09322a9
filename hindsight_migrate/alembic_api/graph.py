"""The revision graph, read from Alembic's ``ScriptDirectory``: no database, no env.py.

Everything here returns plain data (:mod:`hindsight_migrate.revisions`): the revisions, heads
and bases, what a target means, and the path an upgrade or downgrade takes through the graph.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic.script import Script
from alembic.script.revision import CycleDetected, MultipleHeads, ResolutionError, RevisionError

from hindsight_migrate.alembic_api.translate import alembic_errors, raised_in_project
from hindsight_migrate.errors import HindsightMigrateError, RevisionProblem, Section
from hindsight_migrate.revisions import GraphSources, RevisionInfo

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

    from hindsight_migrate.alembic_api.project import Workspace

_CREATE_DATE = re.compile(r"^Create Date:\s*(?P<date>.+?)\s*$", re.MULTILINE)
# The header `alembic revision` writes under the message: facts of the file, not words of its author.
_HEADER_LINE = re.compile(r"^(?:Revision ID|Revises|Create Date):", re.IGNORECASE)
_DUPLICATE = re.compile(r"Revision (?P<revision>\S+) is present more than once")


class RevisionGraph:
    """The project's revisions as Alembic's ScriptDirectory reads them."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self._script: ScriptDirectory | None = None

    def forget(self) -> None:
        self._script = None

    @property
    def script(self) -> ScriptDirectory:
        """The ScriptDirectory with every revision file loaded (loading errors are raised here)."""
        if self._script is None:
            script = self.workspace.directory
            with self._loading():
                caught = self._load(script)
            duplicates = sorted({m.group("revision") for w in caught if (m := _DUPLICATE.search(str(w.message)))})
            if duplicates:
                raise self._duplicates(script, duplicates)
            self._refuse_odd_identifiers(script)
            self._script = script
        return self._script

    def _load(self, script: ScriptDirectory) -> list[warnings.WarningMessage]:
        """Load every revision file; what Alembic cannot make a graph of is named, file by file, in our words."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                script.revision_map.heads  # noqa: B018 - loads every revision file now, errors here
            except CycleDetected as err:
                raise self._cycle(script, err) from err
            except Exception as err:
                # The project's own code raising at import is translated by the caller (exit 14). What is
                # left is Alembic tripping over a file (a KeyError for a parent no file has, a TypeError
                # for an id that is not a string, an ImportError for a dangling link): find the file.
                files = self.workspace.files
                if isinstance(err, (HindsightMigrateError, SyntaxError)) or raised_in_project(err, files):
                    raise  # a file that does not compile is named by the caller's translation
                problem = self._why_not_loaded(script)
                if problem is None:
                    raise
                raise problem from err
        return list(caught)

    @contextmanager
    def _loading(self) -> Iterator[None]:
        with alembic_errors(self.workspace.files, lambda: "while Alembic loaded the revision files"):
            yield

    def _duplicates(self, script: ScriptDirectory, revisions: list[str]) -> RevisionProblem:
        """Two files with one revision id: Alembic only warns and keeps one of them; nothing may run."""
        files: dict[str, list[str]] = {revision: [] for revision in revisions}
        for found in script._load_revisions():
            if found.revision in files:
                files[found.revision].append(str(self.workspace.relative(Path(found.path))))
        return RevisionProblem(
            f"{len(revisions)} revision id(s) belong to more than one file, so Alembic would silently use one of "
            "them. Give each file its own revision id (and fix the down_revision that points at it), then run "
            "again.",
            sections=tuple(Section(f"Revision {rev}", "\n".join(sorted(paths))) for rev, paths in files.items()),
        )

    def _each_file(self, script: ScriptDirectory) -> Iterator[tuple[Path, Script | None, Exception | None]]:
        """Every file Alembic reads as a revision, loaded on its own: (path, its Script or None, what it raised).

        Only on the way to an error message: it imports each file again, as the duplicates check does.
        """
        for folder in script._version_locations:
            if not Path(folder).is_dir():
                continue
            for path in Script._list_py_dir(script, Path(folder)):
                try:
                    yield path, Script._from_path(script, path.resolve()), None
                except Exception as err:
                    if isinstance(err, SyntaxError) or raised_in_project(err, self.workspace.files):
                        raise  # does not compile, or the project's code raised at import: the caller says so
                    yield path, None, err

    def _why_not_loaded(self, script: ScriptDirectory) -> RevisionProblem | None:
        """The files that keep Alembic from building the graph, and why; None when none can be named."""
        problems: list[Section] = []
        loaded: list[tuple[Path, Script]] = []
        for path, found, err in self._each_file(script):
            shown = self._shown(path)
            if err is not None:
                problems.append(Section(shown, _unloadable(path, err)))
            elif found is not None:
                odd = _odd_identifiers(found)
                if odd is not None:
                    problems.append(Section(f"{shown} (revision {found.revision!r})", odd))
                else:
                    loaded.append((path, found))
        if problems:
            return RevisionProblem(
                f"Alembic cannot read {len(problems)} file(s) in the revision folders as revisions, so it cannot "
                "build the revision graph and nothing was run. Fix each file named below (or move what is not a "
                "revision out of the folder), then run again.",
                sections=tuple(problems),
            )
        return self._missing_parents(loaded)

    def _shown(self, path: Path) -> str:
        """A revision file's path as the reader finds it (a link by its own name, not what it points at)."""
        try:
            return str(path.absolute().relative_to(self.workspace.settings.project_dir))
        except ValueError:
            return str(self.workspace.relative(path))

    def _missing_parents(self, loaded: list[tuple[Path, Script]]) -> RevisionProblem | None:
        """Revisions whose down_revision (or depends_on) names a revision no file has."""
        known = {found.revision for _, found in loaded}
        known.update(label for _, found in loaded for label in found.branch_labels)
        dangling: list[tuple[str, str, str, str]] = []  # (file, revision, which attribute, the id it names)
        for path, found in loaded:
            for attribute, value in (("down_revision", found.down_revision), ("depends_on", found.dependencies)):
                for parent in _as_tuple(value):
                    if parent not in known:
                        dangling.append((self._shown(path), found.revision, attribute, parent))
        if not dangling:
            return None
        if len(dangling) == 1:
            shown, revision, attribute, parent = dangling[0]
            headline = (
                f"Revision {revision} ({shown}) has {attribute} = {parent!r}, and no revision file of this project "
                f"has that id, so Alembic cannot place {revision} in the revision graph and nothing was run. Was the "
                f"parent's file deleted or renamed, or its id mistyped? Restore that file, or point {attribute} at "
                "a revision that exists; then run again."
            )
        else:
            headline = (
                f"{len(dangling)} revisions name a parent that no revision file of this project has, so Alembic "
                "cannot build the revision graph and nothing was run. Restore the missing files, or point each "
                "down_revision (depends_on) at a revision that exists; then run again."
            )
        lines = [
            f"{shown}: revision {revision}, {attribute} {parent!r} (no such revision)"
            for shown, revision, attribute, parent in dangling
        ]
        return RevisionProblem(headline, sections=(Section("Missing parent", "\n".join(lines)),))

    def _cycle(self, script: ScriptDirectory, err: Exception) -> RevisionProblem:
        """Revisions that stand on themselves, or on each other in a circle: no order exists to run them in."""
        involved = [str(revision) for revision in getattr(err, "revisions", ())]
        paths: dict[str, str] = {}
        for path, found, failed in self._each_file(script):
            revision = found.revision if found is not None else _revision_in(failed)
            if revision in involved:
                paths[revision] = self._shown(path)
        lines = "\n".join(f"{revision}: {paths.get(revision, '(file not found)')}" for revision in involved)
        if len(involved) == 1:
            headline = (
                f"Revision {involved[0]} ({paths.get(involved[0], 'its file')}) names itself as its down_revision "
                "(or depends_on), so it can never run, and nothing was run. Set down_revision to the revision it "
                "comes after, then run again."
            )
        else:
            headline = (
                f"The revisions {', '.join(involved)} cannot be put in order: their down_revision (or depends_on) "
                "links go round in a circle, or stand on one, so no chain leads to them from a base and nothing was "
                "run. Fix down_revision in the file that closes the circle, then run again."
            )
        return RevisionProblem(headline, sections=(Section("Revisions in the cycle", lines),))

    def _refuse_odd_identifiers(self, script: ScriptDirectory) -> None:
        """Ids that are not strings load, and then break everything that shows them: refused, naming the file."""
        odd: list[Section] = []
        seen: set[int] = set()
        for found in script.revision_map._revision_map.values():
            if found is None or id(found) in seen:
                continue
            seen.add(id(found))
            words = _odd_identifiers(found)
            if words is not None:
                odd.append(Section(str(self.workspace.relative(Path(found.path))), words))  # type: ignore[attr-defined]
        if odd:
            raise RevisionProblem(
                f"Alembic cannot read {len(odd)} revision file(s): their revision identifiers are not text. Fix "
                "them, then run again.",
                sections=tuple(odd),
            )

    # -- reading -------------------------------------------------------------------------

    def sources(self) -> GraphSources:
        """Where Alembic reads revision files from and how, without reading any of them."""
        directory = self.workspace.directory
        # The resolved folders are private to ScriptDirectory, but they are exactly the ones
        # _load_revisions walks: a relative script_location or version location is resolved
        # against the working directory there, which the caller must then take into account.
        configured = [directory.dir, *directory.version_locations]
        return GraphSources(
            script_dir=Path(directory.dir),
            version_locations=tuple(Path(folder) for folder in directory._version_locations),
            recursive=bool(directory.recursive_version_locations),
            sourceless=bool(directory.sourceless),
            relative_to_cwd=not all(Path(location).is_absolute() for location in configured),
        )

    def revisions(self) -> tuple[RevisionInfo, ...]:
        """Every revision, newest first (heads first, each before its parents)."""
        with self._loading():
            return tuple(self._info(script) for script in self.script.walk_revisions())

    def heads(self) -> tuple[str, ...]:
        with self._loading():
            return tuple(self.script.get_heads())

    def bases(self) -> tuple[str, ...]:
        with self._loading():
            return tuple(self.script.get_bases())

    def resolve(self, revision: str) -> RevisionInfo:
        """A single revision by full id, unique prefix (4+ characters), ``head`` or label."""
        revision_map = self.script.revision_map  # loading errors are reported as they are
        try:
            script = revision_map.get_revision(revision)
        except MultipleHeads as err:
            raise RevisionProblem(
                f"{revision!r} means more than one revision: {', '.join(err.heads)}. Name one of them.",
            ) from err
        except ResolutionError as err:
            candidates = sorted(r for r in revision_map._revision_map if r and r.startswith(revision))
            if len(candidates) > 1:
                raise RevisionProblem(
                    f"{revision!r} is ambiguous: it starts {len(candidates)} revisions "
                    f"({', '.join(candidates)}). Give more characters of the revision id."
                ) from err
            raise RevisionProblem(_resolution_advice(revision)) from err
        except (RevisionError, KeyError, ValueError, AssertionError) as err:  # e.g. '@' in odd places
            raise RevisionProblem(f"{revision!r} is not a revision this project knows: {err}") from err
        if script is None:
            raise RevisionProblem(f"{revision!r} is not a single revision (it names the empty base).")
        return self._info(script)  # type: ignore[arg-type]

    def ancestors(self, revisions: Iterable[str]) -> frozenset[str]:
        """The given revisions and every revision they stand on (what is applied at them)."""
        found: set[str] = set()
        with self._loading():
            for revision in revisions:
                found.update(s.revision for s in self.script.iterate_revisions(revision, "base"))
        return frozenset(found)

    def knows(self, revision: str) -> bool:
        return revision in self.script.revision_map._revision_map  # exact ids only

    def script_of(self, revision: str) -> Script:
        """Alembic's Script for an exact revision id (for the env runner's migration steps)."""
        script = self.script.get_revision(revision)
        assert script is not None
        return script

    def _info(self, script: Script) -> RevisionInfo:
        created = _CREATE_DATE.search(script.module.__doc__ or "")
        return RevisionInfo(
            revision=script.revision,
            parents=tuple(script._all_down_revisions),
            children=tuple(sorted(script.nextrev)),
            message=message_of(script.doc),
            created=created.group("date") if created else None,
            path=self.workspace.relative(Path(script.path)),
            branch_labels=tuple(sorted(script.branch_labels)),
            is_head=script.is_head,
            is_base=script.is_base,
            is_branch_point=script.is_branch_point,
            is_merge_point=script.is_merge_point,
        )

    # -- paths through the graph -------------------------------------------------------------

    def upgrade_path(self, current: tuple[str, ...], target: str) -> tuple[RevisionInfo, ...]:
        """The revisions an upgrade from ``current`` to ``target`` runs, in the order it runs them.

        ``target`` is anything ``alembic upgrade`` takes: ``heads``, ``head``, a revision id
        or unique prefix, a branch label, or ``+N`` (relative to ``current``).
        """
        self._refuse_unknown(current)
        self.resolve_target(target)
        with self._loading(), _relative_target_words(target, current), _one_head_words(target):
            scripts = list(self.script.iterate_revisions(target, current, implicit_base=True))
        return tuple(self._info(script) for script in reversed(scripts))

    def downgrade_path(self, current: tuple[str, ...], target: str) -> tuple[RevisionInfo, ...]:
        """The revisions a downgrade from ``current`` to ``target`` reverts, in the order it reverts them.

        ``target`` is anything ``alembic downgrade`` takes: a revision id or unique prefix,
        ``base``, or ``-N`` (relative to ``current``).
        """
        self._refuse_unknown(current)
        if target != "base" and not target.startswith("-"):
            self._refuse_not_below(self.resolve(target), current)
        if target.startswith("-") and len(current) > 1:
            # Alembic only warns here ("ambiguous; will be disallowed") and picks a branch itself.
            raise RevisionProblem(
                f"{target!r} is ambiguous from {', '.join(current)}: the database stands on {len(current)} heads, so "
                "counting steps back has more than one answer. Name the revision to go back to (down --to REV; see "
                "hindsight-migrate history)."
            )
        with self._loading(), _relative_target_words(target, current):
            scripts = list(self.script.iterate_revisions(current, target, select_for_downgrade=True))
        return tuple(self._info(script) for script in scripts)

    def _refuse_unknown(self, current: tuple[str, ...]) -> None:
        """A database at a revision no file has: no path leads from it, and Alembic's words would not say why."""
        unknown = [revision for revision in current if not self.knows(revision)]
        if unknown:
            raise RevisionProblem(
                f"The database is at {', '.join(unknown)}, which no revision file of this project has, so there is "
                "no path from it through the revision graph and nothing was run. Was a revision file deleted or "
                "renamed, or is this another branch's database? Check out the code that has it (hindsight-migrate "
                "status shows where the database stands)."
            )

    def _refuse_not_below(self, target: RevisionInfo, current: tuple[str, ...]) -> None:
        """down goes back: a target the database has not applied (ahead of it, or on another branch) is refused."""
        if target.revision in self.ancestors(current):
            return
        where = ", ".join(current) or "no revision applied"
        raise RevisionProblem(
            f"{target.revision} is not below where the database stands ({where}): down only goes back, and nothing "
            f"was changed. To go forward, use hindsight-migrate up {target.revision}."
        )

    def resolve_target(self, target: str) -> None:
        """Refuse an unknown or ambiguous target with our words (relative targets pass through)."""
        if target in ("head", "heads") or target.startswith("+") or "@" in target:
            return
        self.resolve(target)


@contextmanager
def _relative_target_words(target: str, current: tuple[str, ...]) -> Iterator[Any]:
    """Alembic's "Ambiguous walk" for +N/-N across a branch point or merge, in words that say what to do."""
    try:
        yield
    except RevisionError as err:
        if "didn't produce" in str(err) and target[:1] in "+-":
            steps = target[1:]
            way = "forward" if target.startswith("+") else "back"
            raise RevisionProblem(
                f"{target!r} goes {steps} step(s) {way} from {', '.join(current) or 'base'}, but fewer revisions are "
                f"{'pending' if way == 'forward' else 'applied'} than that, so nothing was run. Give a smaller "
                "number, or name the revision to go to (see hindsight-migrate history)."
            ) from err
        if "Ambiguous walk" in str(err) and target[:1] in "+-":
            raise RevisionProblem(
                f"{target!r} is ambiguous from {', '.join(current) or 'base'}: the graph branches or merges there, "
                "so counting steps has more than one answer. Name the revision to go to (see hindsight-migrate "
                "history)."
            ) from err
        raise


@contextmanager
def _one_head_words(target: str) -> Iterator[None]:
    """Alembic's "Multiple heads are present" for ``head``, in words that say what to do."""
    try:
        yield
    except MultipleHeads as err:
        if target != "head" and not target.endswith("@head"):
            raise
        raise RevisionProblem(
            f"{target!r} names one head, and the chain has {len(err.heads)}: {', '.join(err.heads)}. Name one of them "
            "(hindsight-migrate up REV), take them all with heads, or join them first with hindsight-migrate merge."
        ) from err


def _resolution_advice(revision: str) -> str:
    if len(revision) < 4:
        return (
            f"No revision {revision!r}: give the full revision id, or at least its first four "
            "characters (see hindsight-migrate history)."
        )
    return f"No revision {revision!r} in this project. See hindsight-migrate history for the ids."


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (tuple, list, set, frozenset)):
        return tuple(value)
    return (value,)


def _odd_identifiers(found: Any) -> str | None:
    """Why a loaded revision's identifiers are not what Alembic's graph can use (strings), or None."""
    checks = (
        ("revision", (found.revision,)),
        ("down_revision", _as_tuple(found.down_revision)),
        ("depends_on", _as_tuple(found.dependencies)),
        ("branch_labels", tuple(found.branch_labels)),
    )
    for attribute, values in checks:
        for value in values:
            if not isinstance(value, str) or not value:
                return (
                    f"{attribute} is {value!r}: revision ids and branch labels are strings (down_revision and "
                    "depends_on: a string, a tuple of them, or None)."
                )
    return None


def _unloadable(path: Path, err: Exception) -> str:
    """Why Alembic could not load one file as a revision, in words that say what to do."""
    if path.is_symlink() and not path.exists():
        return f"a link to {os.readlink(path)}, which does not exist: remove the link, or restore what it points at."
    words = str(err)
    if (isinstance(err, AttributeError) and "down_revision" in words) or "Could not determine revision id" in words:
        return (
            "not a revision file: it sets no revision and down_revision. Every .py file in a revision folder is read "
            "as a revision: move other files out of it, or give this one revision and down_revision."
        )
    if isinstance(err, RevisionError):
        return f"{err}."
    if isinstance(err, TypeError):
        return (
            f"its revision identifiers are not text ({type(err).__name__}: {err}): revision, down_revision, "
            "branch_labels and depends_on are strings, tuples of strings, or None."
        )
    return f"Alembic cannot load it: {type(err).__name__}: {err}"


def _revision_in(err: Exception | None) -> str | None:
    """The revision a loading error is about, when Alembic says (a self-loop raised while loading the file)."""
    revisions = getattr(err, "revisions", None)
    return str(revisions[0]) if revisions else None


def message_of(doc: str) -> str:
    """A revision's message: its docstring's first paragraph as Alembic's ``history`` shows it
    (``Script.doc``), less the header lines of a file written without a message (``Revision ID:``, ``Revises:``,
    ``Create Date:``), which are not one; "" when nothing is left."""
    lines = [line.strip(" ") for line in doc.split("\n") if not _HEADER_LINE.match(line.strip())]
    return "\n".join(lines).strip()
