"""`history --offline` from the graph cache: the same output as Alembic's, without loading Alembic.

The cache lives in ``<project>/.hindsight/cache/``. It is only a shortcut: every change to what
the graph is read from sends the command back to Alembic, and a cache that cannot be read or
written is ignored. Revision files younger than two seconds are not cached (an edit within
the file system's clock tick could go unseen), so these tests age the files they wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from hindsight_migrate.alembic_api.graph import RevisionGraph
from tests.conftest import REPO, assert_failure, flatten, invoke
from tests.harness.projects import Rev, write_project, write_revision

ROOT = "1a1a1a1a1a1a"
LEFT = "2b2b2b2b2b2b"
RIGHT = "3c3c3c3c3c3c"
MERGE = "4d4d4d4d4d4d"
NEXT = "5e5e5e5e5e5e"


def merged_project(folder: Path) -> Path:
    """A root, two branches and their merge; aged so the first run caches it. Returns alembic.ini."""
    ini = write_project(
        folder,
        [
            Rev(ROOT, (), message="create things"),
            Rev(LEFT, (ROOT,), message="add things.colour"),
            Rev(RIGHT, (ROOT,), message="add things.size"),
            Rev(MERGE, (LEFT, RIGHT), message="merge colour and size"),
        ],
    )
    age(folder)
    return ini


def age(folder: Path) -> None:
    """Date every file under ``folder`` a minute back, as files are that were not just written."""
    past = time.time() - 60
    for path in folder.rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))


def cache_files(ini: Path) -> list[Path]:
    return sorted((ini.parent / ".hindsight" / "cache").glob("graph-*.json"))


def history(ini: Path, *args: str) -> str:
    """stdout of a successful ``history --offline``."""
    result = invoke("-c", str(ini), "history", "--offline", *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def history_json(ini: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(history(ini, "--json"))
    return document


def messages(document: dict[str, Any]) -> dict[str, str]:
    return {entry["info"]["revision"]: entry["info"]["message"] for entry in document["entries"]}


@pytest.fixture
def alembic_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any use of Alembic to read the graph fails the command: what runs now must be the cache."""

    def refuse(self: RevisionGraph) -> Any:
        raise AssertionError("Alembic was asked for the graph although the cache is fresh")

    for name in ("sources", "revisions", "heads", "bases"):
        monkeypatch.setattr(RevisionGraph, name, refuse)


# -- the cache is used, and changes nothing ---------------------------------------------


def test_second_offline_history_comes_from_the_cache_unchanged(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    ini = merged_project(tmp_path / "p")

    table = history(ini)
    document = history_json(ini)

    (cache,) = cache_files(ini)
    umask = os.umask(0)
    os.umask(umask)
    assert cache.stat().st_mode & 0o777 == 0o666 & ~umask  # readable as the project's other files are
    assert (ini.parent / ".hindsight" / "cache" / ".gitignore").read_text().endswith("*\n")
    assert document["heads"] == [MERGE] and document["bases"] == [ROOT]
    request.getfixturevalue("alembic_refused")  # from here on, Alembic cannot be what answers
    assert history(ini) == table
    assert history_json(ini) == document
    assert f"4 revisions; head(s): {MERGE}; base(s): {ROOT}." in flatten(table)


def test_cached_history_imports_neither_alembic_nor_sqlalchemy(tmp_path: Path) -> None:
    ini = merged_project(tmp_path / "p")
    script = (
        "import sys\n"
        "from hindsight_migrate import cli\n"
        f"sys.argv = ['hindsight-migrate', '-c', {str(ini)!r}, 'history', '--offline']\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit as done:\n"
        "    code = done.code\n"
        "heavy = sorted({name.split('.')[0] for name in sys.modules} & {'alembic', 'sqlalchemy'})\n"
        "print('EXIT', code, 'LOADED', ','.join(heavy) or '-', file=sys.stderr)\n"
    )

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stderr.strip().splitlines()[-1]

    assert run() == "EXIT 0 LOADED alembic,sqlalchemy"  # a miss: Alembic reads the graph
    assert run() == "EXIT 0 LOADED -"  # a hit: neither is imported


def test_files_younger_than_two_seconds_are_not_cached(tmp_path: Path) -> None:
    ini = write_project(tmp_path / "p", [Rev(ROOT, ()), Rev(LEFT, (ROOT,))])  # just written

    history(ini)

    assert cache_files(ini) == []
    age(ini.parent)
    history(ini)
    assert len(cache_files(ini)) == 1


# -- every change to what the graph is read from is seen ---------------------------------


def test_editing_a_revision_message_is_seen(tmp_path: Path) -> None:
    ini = merged_project(tmp_path / "p")
    history(ini)
    path = ini.parent / "migrations" / "versions" / f"{LEFT}.py"

    # Same length: only the file's times tell the edit apart.
    path.write_text(path.read_text().replace("add things.colour", "add things.COLOUR"))

    assert messages(history_json(ini))[LEFT] == "add things.COLOUR"
    assert "add things.COLOUR" in history(ini)


def test_a_same_size_edit_that_keeps_the_old_mtime_is_seen(tmp_path: Path) -> None:
    """What ``cp -p`` or ``tar x`` do: the content changes, the mtime is put back; the ctime tells."""
    ini = merged_project(tmp_path / "p")
    history(ini)
    path = ini.parent / "migrations" / "versions" / f"{RIGHT}.py"
    before = path.stat()

    path.write_text(path.read_text().replace("add things.size", "add things.SIZE"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_size == before.st_size
    assert messages(history_json(ini))[RIGHT] == "add things.SIZE"


def test_adding_a_revision_file_is_seen(tmp_path: Path) -> None:
    ini = merged_project(tmp_path / "p")
    history(ini)

    write_revision(ini.parent / "migrations" / "versions", Rev(NEXT, (MERGE,), message="add things.weight"))

    document = history_json(ini)
    assert document["heads"] == [NEXT]
    assert messages(document)[NEXT] == "add things.weight"
    assert "5 revisions" in flatten(history(ini))


def test_deleting_a_revision_file_is_seen(tmp_path: Path) -> None:
    ini = merged_project(tmp_path / "p")
    history(ini)

    (ini.parent / "migrations" / "versions" / f"{MERGE}.py").unlink()

    document = history_json(ini)
    assert sorted(document["heads"]) == sorted([LEFT, RIGHT])
    assert MERGE not in messages(document)


def test_editing_alembic_ini_is_seen(tmp_path: Path) -> None:
    """recursive_version_locations turned on: a revision in a subfolder joins the graph."""
    ini = merged_project(tmp_path / "p")
    subfolder = ini.parent / "migrations" / "versions" / "more"
    subfolder.mkdir()
    write_revision(subfolder, Rev(NEXT, (MERGE,), message="in a subfolder"))
    age(ini.parent)
    assert history_json(ini)["heads"] == [MERGE]  # not recursive: Alembic does not look in more/
    assert len(cache_files(ini)) == 1

    ini.write_text(ini.read_text().replace("[alembic]\n", "[alembic]\nrecursive_version_locations = true\n"))

    assert history_json(ini)["heads"] == [NEXT]


def test_the_cache_is_written_again_after_a_change(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    ini = merged_project(tmp_path / "p")
    history(ini)
    write_revision(ini.parent / "migrations" / "versions", Rev(NEXT, (MERGE,), message="add things.weight"))
    age(ini.parent)

    document = history_json(ini)  # a miss, which caches the new graph

    request.getfixturevalue("alembic_refused")
    assert history_json(ini) == document
    assert document["heads"] == [NEXT]


# -- a broken cache, or none, changes nothing ---------------------------------------------


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda text: "", id="empty"),
        pytest.param(lambda text: text[: len(text) // 2], id="truncated"),
        pytest.param(lambda text: "\udcff not utf-8".encode("utf-8", "surrogateescape").decode("latin-1"), id="binary"),
        pytest.param(lambda text: "[]", id="a list"),
        pytest.param(lambda text: json.dumps({"format": 1}), id="no fields"),
        pytest.param(lambda text: text.replace('"is_head":true', '"is_head":"yes"'), id="wrong type"),
        pytest.param(lambda text: text.replace('"heads":["', '"heads":[7,"'), id="number for a revision"),
    ],
)
def test_a_corrupt_cache_is_ignored_and_replaced(tmp_path: Path, corrupt: Any) -> None:
    ini = merged_project(tmp_path / "p")
    table = history(ini)
    document = history_json(ini)
    (cache,) = cache_files(ini)
    broken = corrupt(cache.read_text())
    assert broken != cache.read_text()
    cache.write_text(broken, encoding="latin-1")

    assert history(ini) == table
    assert history_json(ini) == document
    assert json.loads(cache.read_text())["graph"]["heads"] == [MERGE]  # written again, whole


def test_a_cache_of_another_alembic_version_is_not_used(tmp_path: Path) -> None:
    ini = merged_project(tmp_path / "p")
    history(ini)
    (cache,) = cache_files(ini)
    stored = json.loads(cache.read_text())
    # The same fingerprint with a message Alembic would not give: used, it would show.
    stored["versions"]["alembic"] = "0.0.1"
    stored["graph"]["revisions"][0]["message"] = "from the stale cache"
    cache.write_text(json.dumps(stored))

    assert "from the stale cache" not in history(ini)
    assert json.loads(cache.read_text())["versions"]["alembic"] != "0.0.1"


def test_a_cache_with_a_matching_fingerprint_is_believed(tmp_path: Path) -> None:
    """The counterpart of the tests above: the cache, when fresh, really is what is shown."""
    ini = merged_project(tmp_path / "p")
    history(ini)
    (cache,) = cache_files(ini)
    stored = json.loads(cache.read_text())
    stored["graph"]["revisions"][0]["message"] = "from the cache"
    cache.write_text(json.dumps(stored))

    assert "from the cache" in history(ini)


def test_hindsight_folder_that_is_a_file_is_ignored(tmp_path: Path) -> None:
    ini = merged_project(tmp_path / "p")
    (ini.parent / ".hindsight").write_text("not a folder")

    first = history(ini)
    second = history(ini)

    assert first == second
    assert f"4 revisions; head(s): {MERGE}; base(s): {ROOT}." in flatten(second)
    assert (ini.parent / ".hindsight").read_text() == "not a folder"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_hindsight_folder_is_ignored(tmp_path: Path) -> None:
    ini = merged_project(tmp_path / "p")
    hindsight = ini.parent / ".hindsight"
    hindsight.mkdir()
    hindsight.chmod(0o500)
    try:
        first = history(ini)
        second = history(ini)
    finally:
        hindsight.chmod(0o700)

    assert first == second
    assert f"4 revisions; head(s): {MERGE}; base(s): {ROOT}." in flatten(second)
    assert list(hindsight.iterdir()) == []


def test_a_cache_folder_refusing_new_files_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a read-only folder does to anyone but root (who runs this suite in CI's container)."""
    ini = merged_project(tmp_path / "p")
    folder = ini.parent / ".hindsight" / "cache"
    folder.mkdir(parents=True)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    first = history(ini)
    second = history_json(ini)

    assert f"4 revisions; head(s): {MERGE}; base(s): {ROOT}." in flatten(first)
    assert second["heads"] == [MERGE] and len(second["entries"]) == 4
    assert list(folder.iterdir()) == []


# -- Alembic's errors are reported as without the cache ------------------------------------


def test_syntax_error_in_a_revision_file_is_exit_5_with_a_warm_cache(tmp_path: Path) -> None:
    ini = merged_project(tmp_path / "p")
    history(ini)
    assert len(cache_files(ini)) == 1
    path = ini.parent / "migrations" / "versions" / f"{LEFT}.py"
    fine = path.read_text()

    path.write_text(fine.replace("def upgrade() -> None:", "def upgrade() -> None"))

    for args in ((), ("--json",)):
        result = invoke("-c", str(ini), "history", "--offline", *args)
        assert_failure(result, 5, "A revision file does not compile", f"{LEFT}.py")

    path.write_text(fine)
    assert messages(history_json(ini))[LEFT] == "add things.colour"
