"""The command as a real process, for tests that kill it, race it or stop its server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli_command(ini: Path | str, url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "hindsight_migrate", "-c", str(ini), "--url", url, *args]


def stop(*processes: subprocess.Popen[str] | None) -> None:
    """Kill whatever is still running (a test that failed half-way must not leave processes)."""
    for process in processes:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def subprocess_env(*, plain: bool = True, **extra: str) -> dict[str, str]:
    """The environment a command runs in as a process: this one's, without DATABASE_URL (every test names its
    database), and with ``plain`` unbuffered, uncoloured output 200 columns wide; ``extra`` on top."""
    settings = {"PYTHONUNBUFFERED": "1", "COLUMNS": "200", "NO_COLOR": "1"} if plain else {}
    return {**{k: v for k, v in os.environ.items() if k != "DATABASE_URL"}, **settings, **extra}
