"""All terminal output: Rich for people, JSON and markdown for scripts and pull requests. Core code never prints.

Data goes to stdout; progress, the database announcement, prompts and errors go to stderr,
so ``hindsight-migrate history --json | jq`` sees only JSON. What is shown is decided in the
core (plan.py, summary.py, rehearsal.py) and arrives here as rows; these modules only lay it out:

* ``console``: one console per stream;
* ``layout``: tables that never cut a cell where the reader cannot widen the window;
* ``plan_view``: the review of a plan (bootstrap, up, down), the prompt's recap, progress;
* ``reports``: history, new, status, check, lint, merge;
* ``data``: JSON documents (``--format json``);
* ``markdown``: pull-request comments (``--format markdown``).
"""

from typing import TYPE_CHECKING, Any

from hindsight_migrate.render.console import (
    announce_database,
    debug_traceback,
    err,
    error,
    internal_error,
    out,
    safe_markup,
    stdout_for_data,
)
from hindsight_migrate.render.data import (
    bootstrap_document,
    check_document,
    check_error_document,
    history_document,
    jsonable,
    lint_document,
    merge_document,
    new_revision_document,
    plan_document,
    print_document,
    print_json,
    status_document,
)
from hindsight_migrate.render.plan_view import (
    RichProgress,
    bootstrap_done,
    bootstrap_plan,
    dry_run_done,
    migration_done,
    migration_plan,
    offline_sql,
    stakes,
)
from hindsight_migrate.render.reports import (
    check_report,
    history,
    lint_report,
    lint_result,
    merged,
    new_revision,
    status,
)

__all__ = [
    "RichProgress",
    "announce_database",
    "bootstrap_document",
    "bootstrap_done",
    "bootstrap_markdown",
    "bootstrap_plan",
    "check_document",
    "check_error_document",
    "check_markdown",
    "check_report",
    "debug_traceback",
    "dry_run_done",
    "err",
    "error",
    "history",
    "history_document",
    "history_markdown",
    "internal_error",
    "jsonable",
    "lint_document",
    "lint_markdown",
    "lint_report",
    "lint_result",
    "merge_document",
    "merge_markdown",
    "merged",
    "migration_done",
    "migration_plan",
    "new_revision",
    "new_revision_document",
    "new_revision_markdown",
    "offline_sql",
    "out",
    "plan_document",
    "plan_markdown",
    "print_document",
    "print_json",
    "print_markdown",
    "safe_markup",
    "stakes",
    "status",
    "status_document",
    "status_markdown",
    "stdout_for_data",
]

if TYPE_CHECKING:
    from hindsight_migrate.render.markdown import (
        bootstrap_markdown,
        check_markdown,
        history_markdown,
        lint_markdown,
        merge_markdown,
        new_revision_markdown,
        plan_markdown,
        print_markdown,
        status_markdown,
    )

# Markdown is asked for by --format markdown only: its module (~40 ms of imports) loads on first use.
_MARKDOWN = frozenset(
    {
        "bootstrap_markdown",
        "check_markdown",
        "history_markdown",
        "lint_markdown",
        "merge_markdown",
        "new_revision_markdown",
        "plan_markdown",
        "print_markdown",
        "status_markdown",
    }
)


def __getattr__(name: str) -> Any:
    if name in _MARKDOWN:
        from hindsight_migrate.render import markdown

        return getattr(markdown, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
