"""The command line's options, as types every command shares, and the global options."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass




# Options every database command accepts, before or after the command name.
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="PATH",
        help="Path to alembic.ini or pyproject.toml (default: ./alembic.ini, else ./pyproject.toml's "
        "[tool.alembic]).",
        show_default=False,
        dir_okay=False,
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        metavar="URL",
        help="Database URL (postgresql://USER:PASSWORD@HOST:PORT/DB). Overrides DATABASE_URL "
        "and sqlalchemy.url; with none of them set, the embedded server is used.",
        show_default=False,
    ),
]
NameOption = Annotated[
    str | None,
    typer.Option(
        "--name",
        "-n",
        metavar="SECTION",
        help="The ini section to read instead of [alembic] (as alembic -n).",
        show_default=False,
    ),
]
DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show the traceback of a failure, and Alembic's own log lines.")
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Let Alembic's own log lines through (they are hidden by default).")
]


PlanOutOption = Annotated[
    Path | None,
    typer.Option(
        "--plan-out",
        help="Save the reviewed plan as JSON (for review in a pull request); - writes it to stdout (the plan "
        "itself then goes to stderr).",
        dir_okay=False,
    ),
]
DetailedExitOption = Annotated[
    bool,
    typer.Option(
        "--detailed-exitcode",
        help="With --dry-run: exit 0 when there is nothing to do, 2 when the plan changes the database, 3 when "
        "it is destructive (data lost, a table with rows rewritten, a blocking lock over destructive_lock).",
    ),
]
LockRetriesOption = Annotated[
    int | None,
    typer.Option(
        "--lock-retries",
        min=0,
        help="Times a revision that waits too long for a lock is tried again, each try waiting longer (setting "
        "lock_retries, default 20); 0 tries once, waiting lock_timeout.",
    ),
]
PlanInOption = Annotated[
    Path | None,
    typer.Option(
        "--plan",
        help="Apply a saved plan, only if the database and the revisions are still what it shows.",
        dir_okay=False,
        exists=False,
    ),
]


class OutputFormat(str, Enum):
    """--format: the text view, one JSON document (schemas in hindsight_migrate/schemas/), or a PR comment."""

    text = "text"
    json = "json"
    markdown = "markdown"


FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        help="text (for people), json (one document with format_version and kind; its JSON Schema is in "
        "hindsight_migrate/schemas/), or markdown (a pull-request comment). Data goes to stdout, the rest to stderr.",
        case_sensitive=False,
    ),
]


@dataclass
class GlobalOptions:
    config: Path | None = None
    url: str | None = None
    debug: bool = False
    name: str | None = None
    verbose: bool = False


ShowSqlOption = Annotated[
    bool,
    typer.Option(
        "--show-sql",
        help="Print every revision's SQL in the plan, also when the plan is big (it is then written to a file).",
    ),
]
DetailsOption = Annotated[
    bool,
    typer.Option(
        "--details",
        help="Show every part of the plan in full: each revision with its file, the schema diff, the "
        "impact table and lint's findings one by one with Squawk's advice.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="The same as --format json.")]
