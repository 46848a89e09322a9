"""The command as a real process, for tests that kill it, race it or stop its server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def cli_command(ini: Path | str, url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "hindsight_migrate", "-c", str(ini), "--url", url, *args]


def start_cli(ini: Path | str, url: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    """The command in a process of its own, its output piped as text, for a test that acts while it runs."""
    return subprocess.Popen(
        cli_command(ini, url, *args),
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


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


ANSI_SEQUENCE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def in_terminal(
    argv: list[str],
    *,
    env: dict[str, str],
    when: str,
    keys: bytes,
    timeout: float = 120,
    columns: int = 80,
    rows: int = 24,
) -> tuple[int, str]:
    """Run ``argv`` on a pseudo-terminal of its own, ``columns`` wide and ``rows`` high (its controlling
    terminal, so Ctrl-C is a real SIGINT from the line discipline); type ``keys`` once ``when`` appears.
    Returns the exit code and everything the terminal showed (the program's stdout and stderr, and the
    terminal's own echo, such as ``^C``)."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    pid, terminal = pty.fork()
    if pid == 0:  # the child: its terminal's size set before it becomes the command, which reads it
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        os.execvpe(argv[0], argv, env)
    shown = b""
    typed = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # EIO: the command ended and closed the terminal
                break
            if not chunk:
                break
            shown += chunk
            if not typed and when.encode() in shown:
                _until_reading_its_terminal(pid)
                os.write(terminal, keys)
                typed = True
        else:
            os.kill(pid, 9)
            raise AssertionError(f"still running after {timeout} s:\n{shown.decode(errors='replace')}")
    finally:
        os.close(terminal)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


# read(2)'s number where /proc/PID/syscall names it: x86-64 and arm64.
_READ_SYSCALL = {"x86_64": "0", "aarch64": "63"}


def _until_reading_its_terminal(pid: int, *, timeout: float = 30) -> None:
    """Wait until ``pid`` is blocked in read(2) on its standard input.

    A prompt on the screen is not yet a process waiting for the answer: Python writes the prompt,
    then calls read(2), and a SIGINT that lands between the two only sets a flag that nothing looks
    at while read(2) waits (CPython checks for signals when read(2) is interrupted, not before it
    starts). A Ctrl-C typed the instant the prompt shows hung the command in 4 of 300 tries.
    """
    import time

    number = _READ_SYSCALL.get(os.uname().machine)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            call = Path(f"/proc/{pid}/syscall").read_text().split()
        except OSError:  # no /proc, or not allowed to look: a pause instead of the check
            time.sleep(1)
            return
        if number is None:
            time.sleep(1)
            return
        if call[:2] == [number, "0x0"]:
            return
        time.sleep(0.01)


def as_seen(shown: str) -> str:
    """What a terminal showed, as the lines a person reads: escape sequences removed, line ends ``\\n``."""
    return ANSI_SEQUENCE.sub("", shown).replace("\r\n", "\n").replace("\r", "")
