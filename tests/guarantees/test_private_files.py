"""Private files: what the tool writes outside the database, no other local user can read, plant or spoil.

A big plan's SQL and Squawk's input go to ``$TMPDIR/hindsight-migrate-<uid>`` (mode 0700, refused
when it is a link, someone else's, or open to others); ``--plan-out FILE`` replaces the file in
one rename. A full disk is this machine's problem (exit 15), never a truncated file, a bad
argument (2) or an internal error (1). TMPDIR points into each test's own folder: the real /tmp
is never touched.

A full disk is simulated (``disk_full_in``): the suite cannot mount a small file system. Every
other failure here is real: real links, real modes, a real owner, a real pipe.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hindsight_migrate.review.lint import squawk_binary
from tests.conftest import assert_failure, invoke
from tests.harness import dbstate
from tests.harness.projects import TINY_BASE, Rev, tiny_project

# 200 statements, two lines each in the offline SQL: over the 300 lines that make a plan big
# (cheaper than the 51 revisions that would do the same).
BIG_UPGRADE = 'for n in range(200):\n    op.execute(f"CREATE TABLE t{n} (id bigint PRIMARY KEY)")'
SMALL_UPGRADE = 'op.execute("CREATE TABLE widgets (id bigint PRIMARY KEY)")'


@pytest.fixture
def temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TMPDIR for this test: a folder of its own (``tempfile`` caches its choice, so that is reset too)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)
    # Chosen now, from TMPDIR. Python tries a write in each candidate before it picks one: under
    # disk_full_in it would pass over this folder for the real /tmp. (A disk that fills once the
    # folder was chosen is the case simulated.)
    assert tempfile.gettempdir() == str(folder)
    return folder


def private_folder_in(temp_folder: Path) -> Path:
    return temp_folder / f"hindsight-migrate-{os.getuid()}"


def big_project(tmp_path: Path) -> str:
    return str(tiny_project(tmp_path / "project", Rev("bbbb00000001", (TINY_BASE,), upgrade=BIG_UPGRADE)))


def small_project(tmp_path: Path) -> str:
    return str(tiny_project(tmp_path / "project", Rev("bbbb00000001", (TINY_BASE,), upgrade=SMALL_UPGRADE)))


def disk_full_in(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """From now on, every file written under ``folder`` gets half its bytes, then ENOSPC: a disk that filled up.

    Simulated at the os level (``os.write`` on files opened under ``folder``) and at
    ``Path.write_text`` (how cbef91c wrote them, so the same fault reaches the old code): a
    real full disk needs a small mounted file system, which the suite cannot make. Writes
    anywhere else (the database's socket, the terminal) pass through.
    """
    real_open, real_write, real_write_text = os.open, os.write, Path.write_text
    doomed: dict[int, tuple[int, int]] = {}  # fd → (device, inode): a reused fd number is not doomed

    def under(path: Any) -> bool:
        return Path(os.path.abspath(os.fsdecode(path))).is_relative_to(folder)

    def full() -> OSError:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fake_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        handle = real_open(path, flags, mode, dir_fd=dir_fd)
        if dir_fd is None and under(path) and flags & (os.O_WRONLY | os.O_RDWR):
            facts = os.fstat(handle)
            doomed[handle] = (facts.st_dev, facts.st_ino)
        return handle

    def fake_write(handle: int, data: Any) -> int:
        if handle in doomed:
            facts = os.fstat(handle)
            if doomed[handle] == (facts.st_dev, facts.st_ino):
                real_write(handle, bytes(data)[: len(data) // 2])  # what still fit
                raise full()
        written: int = real_write(handle, data)
        return written

    def fake_write_text(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        if under(self):
            real_write_text(self, data[: len(data) // 2], *args, **kwargs)
            raise full()
        written: int = real_write_text(self, data, *args, **kwargs)
        return written

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "write", fake_write)
    monkeypatch.setattr(Path, "write_text", fake_write_text)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def everything_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


# -- a big plan's SQL ---------------------------------------------------------------------------


def test_a_big_plans_sql_file_is_private(tmp_path: Path, temp_folder: Path, database_url: str) -> None:
    ini = big_project(tmp_path)

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--no-rehearsal")

    assert result.exit_code == 0, result.output
    [sql_file] = temp_folder.rglob("up-plan-*.sql")
    folder = private_folder_in(temp_folder)
    assert sql_file.parent == folder, sql_file
    assert str(sql_file) in result.output.replace("\n", "")  # the path printed is the file written
    assert "CREATE TABLE t199 " in sql_file.read_text()
    assert mode_of(sql_file) == 0o600
    assert mode_of(folder) == 0o700 and stat.S_ISDIR(os.lstat(folder).st_mode)
    assert os.lstat(folder).st_uid == os.getuid()
    # Squawk's input folder was made there too, and removed with what it held.
    assert everything_under(temp_folder) == [folder.name, f"{folder.name}/{sql_file.name}"]


def test_links_planted_at_the_big_plans_sql_path_are_not_followed(
    tmp_path: Path, temp_folder: Path, database_url: str
) -> None:
    ini = big_project(tmp_path)
    first = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--no-rehearsal")
    assert first.exit_code == 0, first.output
    [written] = temp_folder.rglob("up-plan-*.sql")  # its name is the plan's fingerprint: the same next time
    written.unlink()
    # Another user's trap at the name of the old shared folder, and (by this user, for the sake of
    # the test: no one else can enter it) one in the private folder.
    victims: dict[Path, Path] = {}
    for folder in (temp_folder / "hindsight-migrate", private_folder_in(temp_folder)):
        folder.mkdir(mode=0o700, exist_ok=True)
        victim = tmp_path / f"victim-of-{folder.name}.txt"
        victim.write_text("a file of the user's\n")
        (folder / written.name).symlink_to(victim)
        victims[folder / written.name] = victim

    again = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--no-rehearsal")

    assert again.exit_code == 0, again.output
    for link, victim in victims.items():
        assert victim.read_text() == "a file of the user's\n", f"{link} was followed"
    private = private_folder_in(temp_folder) / written.name
    assert not private.is_symlink() and "CREATE TABLE t199 " in private.read_text()  # replaced, not followed
    assert mode_of(private) == 0o600


def _unsafe_open(folder: Path, elsewhere: Path) -> str:
    folder.mkdir()
    folder.chmod(0o755)
    return "other users can read or enter it (mode 0755"


def _unsafe_link(folder: Path, elsewhere: Path) -> str:
    elsewhere.mkdir(mode=0o700)
    folder.symlink_to(elsewhere)
    return f"it is a symbolic link (to {elsewhere})"


def _unsafe_owner(folder: Path, elsewhere: Path) -> str:
    if os.getuid() != 0:
        pytest.skip("only root can give a folder to another user")
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)  # nobody
    return "it belongs to another user ("


@pytest.mark.parametrize("make_unsafe", [_unsafe_open, _unsafe_link, _unsafe_owner], ids=["open", "link", "owner"])
def test_a_private_folder_that_is_not_private_is_refused_before_anything_is_written(
    tmp_path: Path, temp_folder: Path, database_url: str, make_unsafe: Callable[[Path, Path], str]
) -> None:
    ini = big_project(tmp_path)
    folder = private_folder_in(temp_folder)
    elsewhere = tmp_path / "prepared-by-someone"
    problem = make_unsafe(folder, elsewhere)

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--no-rehearsal")

    assert_failure(result, 15, f"The temporary folder {folder} is not private", problem, "TMPDIR")
    assert "Internal error" not in result.output
    assert not any(folder.iterdir()), "something was written into the folder"
    assert not elsewhere.exists() or not any(elsewhere.iterdir())
    assert not list(temp_folder.rglob("*.sql"))


# -- --plan-out ---------------------------------------------------------------------------------


def test_plan_out_replaces_a_planted_link_and_leaves_its_target_alone(
    tmp_path: Path, temp_folder: Path, database_url: str
) -> None:
    ini = small_project(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("a file of the user's\n")
    plan = tmp_path / "plans" / "plan.json"
    plan.parent.mkdir()
    plan.symlink_to(victim)

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--no-rehearsal", "--plan-out", str(plan))

    assert result.exit_code == 0, result.output
    assert victim.read_text() == "a file of the user's\n"
    assert not plan.is_symlink()
    assert json.loads(plan.read_text())["format"] == "hindsight-migrate plan 1"
    assert mode_of(plan) == 0o600  # it holds the SQL


def test_plan_out_makes_a_new_file_private_and_keeps_an_existing_files_mode(
    tmp_path: Path, temp_folder: Path, database_url: str
) -> None:
    ini = small_project(tmp_path)
    new, shared = tmp_path / "new.json", tmp_path / "shared.json"
    shared.write_text("an older plan\n")
    shared.chmod(0o640)  # made readable by a group on purpose (a deploy user, a review bot)

    for path in (new, shared):
        result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--no-rehearsal", "--plan-out", str(path))
        assert result.exit_code == 0, result.output
        assert json.loads(path.read_text())["format"] == "hindsight-migrate plan 1"

    assert mode_of(new) == 0o600
    assert mode_of(shared) == 0o640


def test_a_full_disk_while_saving_the_plan_leaves_the_old_plan_whole(
    tmp_path: Path, temp_folder: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ini = small_project(tmp_path)
    plans = tmp_path / "plans"
    plans.mkdir()
    plan = plans / "plan.json"
    plan.write_text("the plan reviewed yesterday\n")
    disk_full_in(monkeypatch, plans)

    result = invoke("-c", ini, "--url", database_url, "up", "--yes", "--no-rehearsal", "--plan-out", str(plan))

    assert_failure(result, 15, "is full", str(plan), "Nothing was changed in the database")
    assert plan.read_text() == "the plan reviewed yesterday\n"
    assert everything_under(plans) == ["plan.json"]  # no temporary file left behind
    assert dbstate.alembic_version(database_url) is None and dbstate.tables(database_url) == set()


def test_plan_out_to_a_pipe_writes_to_the_pipe(tmp_path: Path, temp_folder: Path, database_url: str) -> None:
    """A pipe (or /dev/stdout, a process substitution) is written to, not replaced by a file."""
    ini = small_project(tmp_path)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()), daemon=True)
    reader.start()

    result = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--no-rehearsal", "--plan-out", str(pipe))
    reader.join(timeout=30)

    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    assert json.loads(received[0])["format"] == "hindsight-migrate plan 1"


# -- lint's files -------------------------------------------------------------------------------


@pytest.mark.skipif(squawk_binary() is None, reason="Squawk is not installed: lint writes no files")
def test_a_full_temporary_folder_during_lint_is_this_machines_problem(
    tmp_path: Path, temp_folder: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ini = small_project(tmp_path)
    disk_full_in(monkeypatch, temp_folder)

    result = invoke("-c", ini, "--url", database_url, "up", "--yes", "--no-rehearsal")

    assert_failure(result, 15, "is full", "TMPDIR", "Nothing was changed in the database")
    assert "Internal error" not in result.output
    assert dbstate.alembic_version(database_url) is None and dbstate.tables(database_url) == set()
    assert everything_under(temp_folder) == [private_folder_in(temp_folder).name]  # lint's folder removed


# -- the module itself (not importable on cbef91c, where it did not exist) ----------------------


def test_a_failed_replace_leaves_no_temporary_file(tmp_path: Path) -> None:
    from hindsight_migrate.private_files import write_atomically

    occupied = tmp_path / "occupied"
    (occupied / "inside").mkdir(parents=True)  # a folder that holds something: no file can replace it

    with pytest.raises(OSError):
        write_atomically(occupied, "text", mode=0o600)

    assert everything_under(tmp_path) == ["occupied", "occupied/inside"]
