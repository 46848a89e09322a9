"""The one place where failures become messages and exit codes."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import typer

from hindsight_migrate.cli.options import GlobalOptions
from hindsight_migrate.errors import ExitCode, HindsightMigrateError


@dataclass
class CommandRun:
    """One command's run, as the guard sees it."""

    # Set once the command's change has committed (an apply, a bootstrap, a file written): a reader
    # who goes away afterwards (a closed pipe) does not turn a finished, audited apply into a failure.
    committed: bool = False


def guarded(options: GlobalOptions, body: Callable[[CommandRun], None]) -> None:
    """Run a command body; the one place that maps failures to messages and exit codes."""
    from hindsight_migrate import render

    run = CommandRun()
    try:
        body(run)
    except BrokenPipeError:
        # Whoever read stdout went away (`| head`, a closed CI log): what was done stays done.
        silence_stdout()
        if run.committed:
            raise typer.Exit(int(ExitCode.OK)) from None
        with contextlib.suppress(OSError):
            render.err().print("Nothing was changed: stdout was closed before the command could show its plan.")
        raise typer.Exit(int(ExitCode.ABORTED)) from None
    except HindsightMigrateError as problem:
        render.error(problem)
        if options.debug:
            render.debug_traceback(problem)
        raise typer.Exit(int(problem.exit_code)) from None
    except KeyboardInterrupt:
        render.err().print(
            "[bold red]Interrupted.[/] Whatever was running was rolled back; the database is "
            "at its last committed state."
        )
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        render.internal_error(exc)
        if options.debug:
            render.debug_traceback(exc)
        raise typer.Exit(int(ExitCode.INTERNAL)) from None


def silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail on the closed pipe."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def warn(notes: tuple[str, ...]) -> None:
    """What a report could not read, on stderr (a document on stdout stays whole), as written."""
    from hindsight_migrate import render

    for note in notes:
        render.err().print(f"Warning: {note}", markup=False, highlight=False)
