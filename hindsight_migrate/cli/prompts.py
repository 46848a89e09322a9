"""Asking a person: whether one can be asked, a y/N, and typing the target revision."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from hindsight_migrate.errors import Aborted
from hindsight_migrate.revisions import Direction
from hindsight_migrate.untrusted import visible

if TYPE_CHECKING:
    from hindsight_migrate.review.plan import MigrationPlan

# A typo in a 12-character revision id is easy to make; three tries, then the run stops, as sudo does.
TRIES = 3

NO_TERMINAL = (
    "Nothing was changed: this command asks for confirmation, and there is no terminal to ask on. "
    "Run it in a terminal, or pass --yes to go ahead without asking (review first with {review})."
)


def stdin_is_interactive() -> bool:
    """Whether a person can answer a prompt. Tests replace this one function."""
    return sys.stdin.isatty()


def refuse_early_without_terminal(*, asks: bool, review_with: str = "--dry-run") -> None:
    """Before any planning: a run that would ask, with no one to ask, stops here.

    Without this, a CI job that forgot --yes rehearsed the whole plan (a scratch copy of the
    database, minutes on a big one) only to refuse at the question.
    """
    if asks and not stdin_is_interactive():
        raise Aborted(NO_TERMINAL.format(review=review_with))


def someone_to_ask(yes: bool) -> bool:
    """False with --yes; refuses when there is no terminal to ask on and no --yes."""
    if yes:
        return False
    refuse_early_without_terminal(asks=True)
    return True


def _interrupted_at_prompt() -> Aborted:
    # The terminal echoed ^C (or nothing, at the end of input) with the cursor still on the prompt's
    # line: the error box starts on a line of its own.
    typer.echo("", err=True)
    return Aborted("Nothing was changed: the confirmation was not given.")


def confirm(question: str, *, yes: bool) -> None:
    """Ask before changing anything (bootstrap, on an empty database: a y/N is enough)."""
    if not someone_to_ask(yes):
        return
    try:
        # click writes the question itself, past render's escaping: it may quote the project (a URL, a path).
        agreed = typer.confirm(visible(question, multiline=False), default=False, err=True)
    except (typer.Abort, KeyboardInterrupt, EOFError):  # Ctrl-C, or the input ended
        raise _interrupted_at_prompt() from None
    if not agreed:
        raise Aborted("Nothing was changed: you did not confirm.")


def confirm_by_typing(plan: MigrationPlan, *, yes: bool) -> None:
    """The reviewer types the target revision: a deliberate act, not a reflexive 'y'.

    Right above the question, what is at stake (data destroyed, the longest blocking lock), so
    it is on screen when the answer is typed, whatever scrolled away. A mistyped answer is asked
    again, up to TRIES times in all.
    """
    from hindsight_migrate import render

    if not someone_to_ask(yes):
        return
    render.stakes(plan)
    expected = plan.confirmation
    verb = "revert" if plan.direction is Direction.DOWN else "apply"
    # The revision id is the project's text, and click writes the prompt past render's escaping.
    question = visible(f"Type the target revision ({expected}, or its first 8 characters) to {verb}", multiline=False)
    wrong: list[str] = []
    while len(wrong) < TRIES:
        try:
            answer = str(typer.prompt(question, err=True)).strip()
        except (typer.Abort, KeyboardInterrupt, EOFError):  # Ctrl-C, or the input ended: nothing was done
            raise _interrupted_at_prompt() from None
        if answer in (expected, expected[:8]):
            return
        wrong.append(answer)
        if len(wrong) < TRIES:
            typer.echo(visible(f"{answer!r} is not {expected!r}: try again.", multiline=False), err=True)
    tried = ", ".join(repr(answer) for answer in wrong)  # repr: escaped already
    raise Aborted(f"Nothing was changed: {TRIES} answers ({tried}) were not {expected!r}.")


def confirm_rollout(expected: str, targets: int, *, yes: bool) -> None:
    """``fleet up``: the reviewer types the plan's id (or the head revision) before any target is touched."""
    if not someone_to_ask(yes):
        return
    question = visible(f"Type the plan id ({expected}) to migrate {targets} target(s)", multiline=False)
    wrong: list[str] = []
    while len(wrong) < TRIES:
        try:
            answer = str(typer.prompt(question, err=True)).strip()
        except (typer.Abort, KeyboardInterrupt, EOFError):
            raise _interrupted_at_prompt() from None
        if answer == expected:
            return
        wrong.append(answer)
        if len(wrong) < TRIES:
            typer.echo(visible(f"{answer!r} is not {expected!r}: try again.", multiline=False), err=True)
    tried = ", ".join(repr(answer) for answer in wrong)
    raise Aborted(f"Nothing was changed: {TRIES} answers ({tried}) were not {expected!r}.")
