"""The command as a real process, for tests that kill it, race it or stop its server."""

from __future__ import annotations

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
