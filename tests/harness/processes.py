"""The command as a real process, for tests that kill it, race it or stop its server."""

from __future__ import annotations

import os
import re
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


ANSI_SEQUENCE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def on_terminal(
    command: list[str], *, cwd: Path, until: str, columns: int = 80, rows: int = 24, timeout: float = 300
) -> str:
    """What ``command`` writes on a pseudo-terminal ``columns`` wide and ``rows`` high (stdin, stdout and stderr all on
    it, as for a person at a terminal) until ``until`` appears; then it is killed. Escape sequences are
    removed and line ends made ``\\n``, so the lines counted are the lines a person sees scroll by."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in subprocess_env(plain=False, NO_COLOR="1").items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm"
    process = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower, cwd=cwd, env=env)
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while until.encode() not in seen:
            if time.monotonic() > deadline:
                raise AssertionError(f"{until!r} did not appear in {timeout} s:\n{seen.decode(errors='replace')}")
            ready, _, _ = select.select([leader], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    said = seen.decode(errors="replace")
                    raise AssertionError(f"exited {process.returncode} before {until!r}:\n{said}")
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the other end closed: the process is gone
                chunk = b""
            if not chunk:
                raise AssertionError(f"the terminal closed before {until!r}:\n{seen.decode(errors='replace')}")
            seen += chunk
    finally:
        stop(process)  # type: ignore[arg-type]
        os.close(leader)
    return ANSI_SEQUENCE.sub("", seen.decode(errors="replace")).replace("\r\n", "\n").replace("\r", "")


def in_terminal(
    argv: list[str], *, env: dict[str, str], when: str, keys: bytes, timeout: float = 120
) -> tuple[int, str]:
    """Run ``argv`` on a pseudo-terminal of its own (its controlling terminal, so Ctrl-C is a real SIGINT
    from the line discipline); type ``keys`` once ``when`` appears. Returns the exit code and everything
    the terminal showed (the program's stdout and stderr, and the terminal's own echo, such as ``^C``)."""
    import pty
    import select
    import time

    pid, terminal = pty.fork()
    if pid == 0:  # the child: become the command
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
                os.write(terminal, keys)
                typed = True
        else:
            os.kill(pid, 9)
            raise AssertionError(f"still running after {timeout} s:\n{shown.decode(errors='replace')}")
    finally:
        os.close(terminal)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")
