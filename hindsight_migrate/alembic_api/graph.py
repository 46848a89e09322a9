"""The revision graph, read from Alembic's ``ScriptDirectory``: no database, no env.py.

Everything here returns plain data (:mod:`hindsight_migrate.revisions`): the revisions, heads
and bases, what a target means, and the path an upgrade or downgrade takes through the graph.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hindsight_migrate.alembic_api.translate import alembic_errors
from hindsight_migrate.errors import RevisionProblem, Section
from hindsight_migrate.revisions import GraphSources, RevisionInfo

if TYPE_CHECKING:
    from alembic.script import Script, ScriptDirectory

    from hindsight_migrate.alembic_api.project import AlembicProject

_CREATE_DATE = re.compile(r"^Create Date:\s*(?P<date>.+?)\s*$", re.MULTILINE)
_DUPLICATE = re.compile(r"Revision (?P<revision>\S+) is present more than once")


class RevisionGraph:
    """The project's revisions as Alembic's ScriptDirectory reads them."""

    def __init__(self, project: AlembicProject) -> None:
        self.project = project
        self._script: ScriptDirectory | None = None

    def forget(self) -> None:
        self._script = None

    @property
    def script(self) -> ScriptDirectory:
        """The ScriptDirectory with every revision file loaded (loading errors are raised here)."""
        if self._script is None:
            script = self.project.directory
            with self._loading(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                script.revision_map.heads  # noqa: B018 - loads every revision file now, errors here
            duplicates = sorted({m.group("revision") for w in caught if (m := _DUPLICATE.search(str(w.message)))})
            if duplicates:
                raise self._duplicates(script, duplicates)
            self._script = script
        return self._script

    @contextmanager
    def _loading(self) -> Iterator[None]:
        with alembic_errors(self.project.files, lambda: "while Alembic loaded the revision files"):
            yield

    def _duplicates(self, script: ScriptDirectory, revisions: list[str]) -> RevisionProblem:
        """Two files with one revision id: Alembic only warns and keeps one of them; nothing may run."""
        files: dict[str, list[str]] = {revision: [] for revision in revisions}
        for found in script._load_revisions():
            if found.revision in files:
                files[found.revision].append(str(self.project.relative(Path(found.path))))
        return RevisionProblem(
            f"{len(revisions)} revision id(s) belong to more than one file, so Alembic would silently use one of "
            "them. Give each file its own revision id (and fix the down_revision that points at it), then run "
            "again.",
            sections=tuple(Section(f"Revision {rev}", "\n".join(sorted(paths))) for rev, paths in files.items()),
        )

    # -- reading -------------------------------------------------------------------------

    def sources(self) -> GraphSources:
        """Where Alembic reads revision files from and how, without reading any of them."""
        directory = self.project.directory
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
        from alembic.script.revision import MultipleHeads, ResolutionError, RevisionError

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
            message=script.doc,
            created=created.group("date") if created else None,
            path=self.project.relative(Path(script.path)),
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
        self.resolve_target(target)
        with self._loading(), _relative_target_words(target, current):
            scripts = list(self.script.iterate_revisions(target, current, implicit_base=True))
        return tuple(self._info(script) for script in reversed(scripts))

    def downgrade_path(self, current: tuple[str, ...], target: str) -> tuple[RevisionInfo, ...]:
        """The revisions a downgrade from ``current`` to ``target`` reverts, in the order it reverts them.

        ``target`` is anything ``alembic downgrade`` takes: a revision id or unique prefix,
        ``base``, or ``-N`` (relative to ``current``).
        """
        if target != "base" and not target.startswith("-"):
            self.resolve(target)
        with self._loading(), _relative_target_words(target, current):
            scripts = list(self.script.iterate_revisions(current, target, select_for_downgrade=True))
        return tuple(self._info(script) for script in scripts)

    def resolve_target(self, target: str) -> None:
        """Refuse an unknown or ambiguous target with our words (relative targets pass through)."""
        if target in ("head", "heads") or target.startswith("+") or "@" in target:
            return
        self.resolve(target)


@contextmanager
def _relative_target_words(target: str, current: tuple[str, ...]) -> Iterator[Any]:
    """Alembic's "Ambiguous walk" for +N/-N across a branch point or merge, in words that say what to do."""
    from alembic.script.revision import RevisionError

    try:
        yield
    except RevisionError as err:
        if "Ambiguous walk" in str(err) and target[:1] in "+-":
            raise RevisionProblem(
                f"{target!r} is ambiguous from {', '.join(current) or 'base'}: the graph branches or merges there, "
                "so counting steps has more than one answer. Name the revision to go to (see hindsight-migrate "
                "history)."
            ) from err
        raise


def _resolution_advice(revision: str) -> str:
    if len(revision) < 4:
        return (
            f"No revision {revision!r}: give the full revision id, or at least its first four "
            "characters (see hindsight-migrate history)."
        )
    return f"No revision {revision!r} in this project. See hindsight-migrate history for the ids."
