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




def stdin_is_interactive() -> bool:
    """Whether a person can answer a prompt. Tests replace this one function."""
    return sys.stdin.isatty()


def someone_to_ask(yes: bool) -> bool:
    """False with --yes; refuses when there is no terminal to ask on and no --yes."""
    if yes:
        return False
    if not stdin_is_interactive():
        raise Aborted(
            "Nothing was changed: this command asks for confirmation, and there is no terminal "
            "to ask on. Review the plan above, then run again with --yes."
        )
    return True


def confirm(question: str, *, yes: bool) -> None:
    """Ask before changing anything (bootstrap, on an empty database: a y/N is enough)."""
    # click writes the question itself, past render's escaping: it may quote the project (a URL, a path).
    if someone_to_ask(yes) and not typer.confirm(visible(question, multiline=False), default=False, err=True):
        raise Aborted("Nothing was changed: you did not confirm.")


def confirm_by_typing(plan: MigrationPlan, *, yes: bool) -> None:
    """The reviewer types the target revision: a deliberate act, not a reflexive 'y'.

    Right above the question, what is at stake (data destroyed, the longest blocking lock), so
    it is on screen when the answer is typed, whatever scrolled away.
    """
    from hindsight_migrate import render
    if not someone_to_ask(yes):
        return
    render.stakes(plan)
    expected = plan.confirmation
    verb = "revert" if plan.direction is Direction.DOWN else "apply"
    try:
        answer = typer.prompt(
            # The revision id is the project's text, and click writes the prompt past render's escaping.
            visible(f"Type the target revision ({expected}, or its first 8 characters) to {verb}", multiline=False),
            err=True,
        ).strip()
    except (typer.Abort, EOFError):  # Ctrl-C, or the input ended: nothing was asked of the database
        raise Aborted("Nothing was changed: the confirmation was not given.") from None
    if answer not in (expected, expected[:8]):
        raise Aborted(f"Nothing was changed: {answer!r} is not {expected!r}.")  # repr: escaped already
