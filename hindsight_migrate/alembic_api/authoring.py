"""Writing revision files: autogenerate (reviewed before the file is written) and merges.

Both are Alembic's own commands (``command.revision``, ``command.merge``), run with the
tool's connection handed to env.py, with what Alembic prints kept out of the tool's output.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import autogenerate as autogen
from alembic import command
from alembic.operations import ops as alembic_ops
from alembic.runtime.environment import EnvironmentContext

from hindsight_migrate.alembic_api.comparison import comparing
from hindsight_migrate.alembic_api.models import ModelsSeen, models_seen
from hindsight_migrate.alembic_api.translate import alembic_errors
from hindsight_migrate.errors import ConfigError, HindsightMigrateError, Section
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.revisions import Comparison, Operation

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from hindsight_migrate.alembic_api.environment import EnvironmentRunner
    from hindsight_migrate.alembic_api.project import Workspace


class Authoring:
    """Writes revision files into the project's versions folder."""

    def __init__(self, workspace: Workspace, env: EnvironmentRunner, *, on_written: Callable[[], None]) -> None:
        self.workspace = workspace
        self.env = env
        self.on_written = on_written  # a revision file was written: whoever read the folder reads it again
        # env.py's target_metadata at the last comparison: which models it sees, and their package.
        self.models_seen: ModelsSeen | None = None

    def _template(self) -> Path:
        return Path(self.workspace.directory.dir) / "script.py.mako"

    def _require_template(self) -> None:
        """Alembic renders every new file from script.py.mako in the migrations folder: say so when it is gone
        (Mako's FileNotFoundError, raised half-way through writing, names nothing the reader can act on)."""
        template = self._template()
        if not template.is_file():
            raise ConfigError(
                f"The revision template {self.workspace.relative(template)} does not exist, so no revision file can "
                "be written. Restore it (alembic init writes one; a project's own copy is usually in version "
                "control), then run the command again. Nothing was written."
            )

    def _revision_files(self) -> set[Path]:
        return {path for folder in self.workspace.files.revision_folders for path in folder.glob("*.py")}

    @contextlib.contextmanager
    def _no_file_left_behind(self) -> Iterator[None]:
        """Whatever fails after Alembic wrote a revision file (a post-write hook it cannot find, the project's
        own hook) removes that file: a command that failed has written nothing. A failure in a post-write hook is
        the configuration's ([post_write_hooks] of the ini), and is said as such."""
        before = self._revision_files()
        try:
            yield
        except BaseException as err:
            written = sorted(self._revision_files() - before)
            for path in written:
                path.unlink(missing_ok=True)
            removed = (
                Section("Removed", "\n".join(str(self.workspace.relative(path)) for path in written))
                if written
                else None
            )
            if _raised_in_post_write_hook(err):
                problem: HindsightMigrateError = ConfigError(
                    "A post-write hook of the ini ([post_write_hooks]) failed after Alembic wrote the revision file, "
                    "so the file was removed and nothing was written. Fix the hook (its entrypoint, module or "
                    "executable must exist), or remove it from the ini, then run the command again.",
                    sections=(Section("Alembic said", mask_secrets(str(err.__cause__ or err))),),
                )
                raise (problem.with_section(removed) if removed else problem) from err
            if isinstance(err, HindsightMigrateError) and removed is not None:
                err.with_section(removed)
            raise

    def autogenerate(
        self,
        connection: Connection,
        message: str,
        *,
        write: Callable[[tuple[Operation, ...]], bool],
    ) -> tuple[tuple[Operation, ...], Path | None, Comparison]:
        """Compare the models with the database on ``connection`` (which must be at head).

        ``write`` sees the detected operations before anything is written and says whether to
        write the revision file. Returns the operations, the new file's path (None when
        nothing was written) and what was compared (types, server defaults: see
        :mod:`.comparison`). Writes a file; reads the database only (a temporary table in a
        savepoint that is rolled back stores a default as PostgreSQL would).
        """
        workspace = self.workspace
        directory = workspace.directory
        # What `alembic revision --autogenerate` does (command.revision), in two steps: compare (env.py runs, and
        # its own process_revision_directives hook shapes the result, as Alembic hands it to it), then write,
        # only if ``write`` says so. Alembic's check compares the same way and writes nothing.
        arguments: dict[str, Any] = {
            "message": message,
            "autogenerate": True,
            "sql": False,
            "head": "head",
            "splice": False,
            "branch_label": None,
            "version_path": None,
            "rev_id": None,
            "depends_on": None,
        }
        revision_context = autogen.RevisionContext(workspace.config, directory, arguments)

        def compare(revision: Any, context: Any) -> list[Any]:
            revision_context.run_autogenerate(revision, context)
            self.models_seen = models_seen(context.opts.get("target_metadata"), str(directory.dir))
            return []

        # Alembic announces "Generating ... done" on stdout itself; the tool says it in its own words.
        with (
            self._no_file_left_behind(),
            self.env.online(connection),
            contextlib.redirect_stdout(workspace.output),
            comparing() as compared,
        ):
            with EnvironmentContext(
                workspace.config,
                directory,
                fn=compare,
                as_sql=False,
                template_args=revision_context.template_args,
                revision_context=revision_context,
            ):
                self.env._run_env()  # env.py, after checking it is there
            # The project's hook may have emptied the list (nothing to write) or reshaped it: what it left is
            # what Alembic would write.
            found = tuple(
                operation
                for script in revision_context.generated_revisions
                for upgrade_ops in script.upgrade_ops_list
                for operation in _operations(upgrade_ops.ops)
            )
            if not revision_context.generated_revisions or not write(found):
                return found, None, compared.result()
            # Comparing needs no template (check compares and writes nothing); writing does.
            self._require_template()
            scripts = list(revision_context.generate_scripts())
        written = next((script for script in scripts if script is not None), None)
        if written is None:
            return found, None, compared.result()
        self.on_written()  # a new file: later calls must see it
        return found, workspace.relative(Path(written.path)), compared.result()

    def empty_revision(self, message: str) -> Path:
        """Writes a file: a revision with empty upgrade()/downgrade(), from the project's template (no database)."""
        self._require_template()
        workspace = self.workspace
        with (
            self._no_file_left_behind(),
            alembic_errors(workspace.files, lambda: "while Alembic wrote the revision file"),
            contextlib.redirect_stdout(workspace.output),
        ):
            result = command.revision(workspace.config, message=message)
        script = result[0] if isinstance(result, list) else result
        assert script is not None
        self.on_written()
        return workspace.relative(Path(script.path))

    def merge_heads(self, message: str) -> tuple[str, Path]:
        """Writes a file: a merge revision of every head (Alembic's merge). Returns its id and path."""
        self._require_template()
        workspace = self.workspace
        with (
            self._no_file_left_behind(),
            alembic_errors(workspace.files, lambda: "while Alembic wrote the merge revision"),
            contextlib.redirect_stdout(workspace.output),
        ):
            script = command.merge(workspace.config, revisions="heads", message=message)
        self.on_written()  # the graph has a new file
        assert script is not None
        return script.revision, workspace.relative(Path(script.path))


def _operations(ops: Iterable[Any]) -> list[Operation]:
    """Flatten Alembic's op tree (ModifyTableOps hold the per-table ones) into Operations."""
    result: list[Operation] = []
    for op in ops:
        if isinstance(op, alembic_ops.ModifyTableOps):
            result.extend(_operations(op.ops))
        elif isinstance(op, (alembic_ops.CreateTableOp, alembic_ops.DropTableOp)):
            kind = "add_table" if isinstance(op, alembic_ops.CreateTableOp) else "drop_table"
            columns = tuple((c.name, str(c.type)) for c in op.to_table().columns)
            result.append(Operation(kind, op.table_name, op.table_name, columns=columns))
        elif isinstance(op, (alembic_ops.AddColumnOp, alembic_ops.DropColumnOp)):
            column = op.column if isinstance(op, alembic_ops.AddColumnOp) else op.to_column()
            kind = "add_column" if isinstance(op, alembic_ops.AddColumnOp) else "drop_column"
            result.append(
                Operation(
                    kind,
                    op.table_name,
                    column.name,
                    type=str(column.type),
                    nullable=bool(column.nullable),
                    has_server_default=column.server_default is not None,
                )
            )
        elif isinstance(op, alembic_ops.AlterColumnOp):
            result.append(
                Operation(
                    "alter_column",
                    op.table_name,
                    op.column_name,
                    type=str(op.modify_type) if op.modify_type is not None else None,
                    existing_type=str(op.existing_type) if op.existing_type is not None else None,
                    nullable=op.modify_nullable,
                    has_server_default=bool(op.existing_server_default or op.modify_server_default),
                    server_default=_default_sql(op.modify_server_default),
                )
            )
        else:
            name = getattr(op, "index_name", None) or getattr(op, "constraint_name", None) or ""
            table_name = getattr(op, "table_name", None) or ""
            kind = {
                "CreateIndexOp": "add_index",
                "DropIndexOp": "drop_index",
                "AddConstraintOp": "add_constraint",
                "CreateUniqueConstraintOp": "add_constraint",
                "CreateForeignKeyOp": "add_constraint",
                "CreateCheckConstraintOp": "add_constraint",
                "DropConstraintOp": "drop_constraint",
            }.get(type(op).__name__, type(op).__name__)
            result.append(Operation(kind, str(table_name), str(name)))
    return result


def _default_sql(default: Any) -> str | None:
    """An AlterColumnOp's new server default as SQL: False means unchanged, None dropped (DEFAULT NULL)."""
    if default is False:
        return None
    if default is None:
        return "NULL"
    arg = getattr(default, "arg", default)
    if isinstance(arg, str):
        return "'" + arg.replace("'", "''") + "'"
    text = getattr(arg, "text", None)  # text("now()")
    return str(text) if text is not None else str(arg)


def _raised_in_post_write_hook(err: BaseException) -> bool:
    """Whether Alembic's post-write hooks (``alembic/script/write_hooks.py``) raised ``err``, or its cause."""
    while err is not None:
        frames = traceback.extract_tb(err.__traceback__)
        if any(Path(frame.filename).parts[-3:] == ("alembic", "script", "write_hooks.py") for frame in frames):
            return True
        err = err.__cause__  # type: ignore[assignment]
    return False
