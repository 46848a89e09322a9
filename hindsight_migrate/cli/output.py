"""Which format a command prints (text, JSON, markdown), and printing it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hindsight_migrate.errors import BadArgument

if TYPE_CHECKING:
    pass

from hindsight_migrate.cli.options import OutputFormat


def output_format(output: OutputFormat, as_json: bool = False) -> OutputFormat:
    """--json is the older spelling of --format json."""
    if as_json and output not in (OutputFormat.text, OutputFormat.json):
        raise BadArgument(f"--json means --format json: give --json or --format {output.value}, not both.")
    return OutputFormat.json if as_json else output


def no_document_with_sql(output: OutputFormat) -> None:
    if output is not OutputFormat.text:
        raise BadArgument(f"--sql prints the SQL alone, for piping: it takes no --format {output.value}.")


def document_can_be_printed(output: OutputFormat, *, dry_run: bool, yes: bool, plan_out: Path | None = None) -> None:
    """A document on stdout leaves no one to answer a prompt, and nothing else may share stdout with it."""
    if output is OutputFormat.text:
        return
    if not dry_run and not yes:
        raise BadArgument(
            f"--format {output.value} prints one document on stdout, with no one to answer a prompt in between: "
            "add --dry-run to print the plan only, or --yes to apply it and print the plan with the result."
        )
    if plan_out == Path("-"):
        raise BadArgument(
            f"--plan-out - and --format {output.value} would both write to stdout: save the plan to a file "
            "(--plan-out FILE)."
        )


def show(
    output: OutputFormat,
    text: Callable[[], None],
    document: Callable[[], dict[str, object]],
    markdown: Callable[[], str],
) -> None:
    """The one place a report command picks its format."""
    from hindsight_migrate import render

    if output is OutputFormat.json:
        render.print_document(document())
    elif output is OutputFormat.markdown:
        render.print_markdown(markdown())
    else:
        text()
