"""How a rehearsal runs: each revision committing on a copy (scratch, another database), or one transaction on
the target that is rolled back; both under the containment of :mod:`hindsight_migrate.postgres.containment`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError, OperationalError

from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.errors import Refused, Section
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.postgres import catalog
from hindsight_migrate.postgres.containment import (
    Containment,
    LeftTransaction,
    Mode,
    MustRollBack,
)
from hindsight_migrate.postgres.database import (
    Database,
    ServerWarnings,
    commit_without_waiting_for_the_disk,
    server_said,
    set_lock_timeout,
    set_statement_timeout,
)
from hindsight_migrate.postgres.sqlscript import creates_version_table
from hindsight_migrate.review.bootstrap import drop_baseline_schema, rehearse_bootstrap
from hindsight_migrate.review.kinds import FailedAt
from hindsight_migrate.review.rehearsal.meter import Meter
from hindsight_migrate.review.rehearsal.model import (
    Rehearsal,
    RehearsalFailure,
    RehearsalOptions,
    RehearsalPlace,
    RevisionCost,
    Work,
)
from hindsight_migrate.revisions import RevisionInfo
from hindsight_migrate.schema import SchemaSnapshot, diff_schemas

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection



# -- how: committing per revision (scratch, URL) ----------------------------------------


@dataclass
class Run:
    """What running the work did, so far: its costs, a failure, warnings, and the schema after (read in the
    rolled-back transaction when the run ended in one; None: read it from what was committed)."""

    costs: list[RevisionCost] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    failure: RehearsalFailure | None = None
    warnings: list[str] = field(default_factory=list)
    after: SchemaSnapshot | None = None
    rolled_back_from: str | None = None  # the revision from which the rest ran in one rolled-back transaction


def rehearse_committing(
    project: AlembicProject,
    where_db: Database,
    work: Work,
    where: RehearsalPlace,
    description: str,
    with_data: bool,
    sizes: dict[str, catalog.TableSize],
) -> Rehearsal:
    containment = Containment(Mode.COMMITTING)
    with where_db.connect() as connection:
        shared_before = catalog.server_objects(connection)
        before = catalog.schema_snapshot(connection, version_table=work.version_table)
        connection.rollback()
        # A scratch or disposable database: its commits need not wait for the disk.
        commit_without_waiting_for_the_disk(connection)
        connection.commit()
        # The impact report shows locks on the target's tables only: with none, there is nothing to read.
        has_tables = bool(sizes)
        with containment.armed(connection), ServerWarnings().listening(connection) as heard:
            run = _run_contained(project, where_db, connection, work, containment, heard, has_tables)
        run.warnings += _outside_transactions(project)
        if run.after is None:
            if work.drop_baseline and run.failure is None:
                with connection.begin():
                    drop_baseline_schema(connection, version_table=work.version_table)
            run.after = catalog.schema_snapshot(connection, version_table=work.version_table)
            connection.rollback()
        shared_after = catalog.server_objects(connection)
        connection.rollback()
    if run.rolled_back_from is not None:
        description += (
            f"; from {run.rolled_back_from} on in one transaction that was rolled back, since it changes objects "
            "the whole server shares"
        )
    return Rehearsal(
        where=where,
        description=description,
        with_data=with_data,
        diff=diff_schemas(before, run.after),
        costs=tuple(run.costs),
        failure=run.failure or _escaped(shared_before, shared_after, run, containment),
        warnings=tuple(run.warnings),
        sizes=sizes,
        not_rehearsed=tuple(containment.not_rehearsed),
        server_wide=tuple(containment.server_wide),
        server_warnings=tuple(heard.heard),
    )


def _outside_transactions(project: AlembicProject) -> list[str]:
    """What the rehearsal says of the project's statements that ran outside a transaction (each committed at once)."""
    return [
        f"{ran.revision}: ran outside a transaction (after a COMMIT, or in autocommit_block()), so it is not "
        f"rolled back if a later statement fails — the guarantee that a failed revision leaves nothing does not "
        f"hold for it: {ran.statement}"
        for ran in project.env.outside_transactions
    ]


def _run_contained(
    project: AlembicProject,
    where_db: Database,
    connection: Connection,
    work: Work,
    containment: Containment,
    heard: ServerWarnings,
    has_tables: bool,
) -> Run:
    """Each revision commits, until one would change objects the whole server shares: from that revision on,
    the rest runs in one transaction that is rolled back (so nothing outside this database changes)."""
    run = Run()
    bootstrapped = work.bootstrap is None
    try:
        if work.bootstrap is not None:
            with connection.begin():
                rehearse_bootstrap(work.bootstrap, project, connection)
            bootstrapped = True
        meter = Meter(
            where_db.engine, connection, per_statement=False, read_locks=has_tables, version_table=work.version_table
        )
        try:
            _run_measured(project, connection, work, meter, run.running, run.costs, containment, heard)
            if connection.in_transaction():  # an env.py that does not begin its own transaction
                connection.commit()
        finally:
            meter.close()
        return run
    except MustRollBack as server_wide:
        reason = server_wide.what
        containment.abandon_transaction(connection)  # the revision that reached past the database: not committed
    except DBAPIError as err:
        run.failure = failure_of(run.running, server_said(err), err, work.version_table)
        if run.costs and run.costs[-1].revision == run.failure.revision:
            run.costs.pop()  # measured, then its commit failed (a deferred constraint): it did not happen
        if connection.in_transaction():
            connection.rollback()
        return run
    if run.costs and run.running and run.costs[-1].revision == run.running[-1]:
        run.costs.pop()  # measured, then its commit was refused: it did not happen
    committed = {cost.revision for cost in run.costs}
    rest = [info for info in work.revisions if info.revision not in committed]
    run.rolled_back_from = rest[0].revision if rest else "the bootstrap"
    commits = next((info for info in rest if "autocommit_block" in revision_source(project, info)), None)
    if commits is not None:
        rest = rest[: rest.index(commits)]
        run.warnings.append(
            f"{commits.revision} and the revisions after it were not rehearsed: it commits (autocommit_block()), and "
            f"the rehearsal runs in one transaction that is rolled back from {run.rolled_back_from} on, because "
            f"that revision changes objects the whole server shares ({reason})."
        )
    connection.begin()
    containment.roll_back_from_here()
    meter = Meter(connection, connection, per_statement=True, version_table=work.version_table)
    try:
        if not bootstrapped:
            assert work.bootstrap is not None
            rehearse_bootstrap(work.bootstrap, project, connection)
        rest_of_work = Work(tuple(rest), work.downgrade, None, False, work.version_table)
        _run_measured(project, connection, rest_of_work, meter, run.running, run.costs, containment, heard)
        containment.verify_inside()
        if work.drop_baseline and commits is None:
            drop_baseline_schema(connection, version_table=work.version_table)
        run.after = catalog.schema_snapshot(connection, version_table=work.version_table)
    except LeftTransaction as left:
        raise _not_rehearsable(run.running, left, "in the transaction it had to be rolled back in") from None
    except DBAPIError as err:
        run.failure = failure_of(run.running, server_said(err), err, work.version_table)
        run.after = None  # what the committed revisions left: read after the rollback
    finally:
        meter.close()
        containment.disarm()
        connection.rollback()
    return run


def _escaped(
    shared_before: catalog.ServerObjects, shared_after: catalog.ServerObjects, run: Run, containment: Containment
) -> RehearsalFailure | None:
    """The last guard: objects the whole server shares that changed while the rehearsal ran, when a statement
    ran where no check before a commit could see it (outside a transaction: dynamic SQL in a DO block inside
    autocommit_block()). Databases that appear or go are other sessions' (CREATE DATABASE cannot run inside a
    DO block or a function, and a top-level one is never sent), and are left out."""
    if not containment.ran_outside_transactions:
        return None
    changes = catalog.server_object_changes(shared_before, shared_after, new_databases=False)
    if not changes:
        return None
    return RehearsalFailure(
        last_of(run.running),
        "objects the whole server shares changed while the rehearsal ran, and a rehearsal must change nothing "
        "outside its own database: " + "; ".join(changes) + ". If a revision did this (dynamic SQL inside "
        "autocommit_block(), which commits at once), the change is committed: undo it by hand. If another session "
        "did, run again.",
        None,
    )


def _not_rehearsable(running: list[str], left: LeftTransaction, where: str) -> Refused:
    return Refused(
        f"Revision {last_of(running)} cannot be rehearsed {where}: {left.how}, which would commit part of the "
        "migration during a dry run. Nothing was committed. Rehearse on a scratch copy (the default) or "
        "--rehearse-on URL.",
    )


# -- how: one rolled-back transaction on the target --------------------------------------


def rehearse_on_target(
    project: AlembicProject,
    target: Database,
    work: Work,
    options: RehearsalOptions,
    sizes: dict[str, catalog.TableSize],
) -> Rehearsal:
    for revision in work.revisions:
        source = revision_source(project, revision)
        if "autocommit_block" in source:
            raise Refused(
                f"Revision {revision.revision} uses autocommit_block(), which commits; it cannot be "
                "rehearsed inside a rolled-back transaction on the target. Rehearse on a scratch "
                "copy (the default) or --rehearse-on URL.",
                sections=(Section("Not rehearsable", str(revision.path)),),
            )
    costs: list[RevisionCost] = []
    failure = None
    warnings: list[str] = []
    # nextval() is not transactional: values the rehearsal takes stay taken after the rollback.
    sequences = _sequence_values(target)
    containment = Containment(Mode.ROLLED_BACK)
    with target.connect() as connection:
        shared_before = catalog.server_objects(connection)
        connection.rollback()
        transaction = connection.begin()
        running: list[str] = []
        with containment.armed(connection), ServerWarnings().listening(connection) as heard:
            # Before anything else, so that every statement after it is checked against this transaction.
            containment.roll_back_from_here()
            meter = Meter(connection, connection, per_statement=True, version_table=work.version_table)
            try:
                # Whole milliseconds (Duration): nothing from a settings file is pasted into SQL.
                set_lock_timeout(connection, options.lock_timeout, local=True)
                set_statement_timeout(connection, options.statement_timeout, local=True)
                before = catalog.schema_snapshot(connection, version_table=work.version_table)
                if work.bootstrap is not None:
                    rehearse_bootstrap(work.bootstrap, project, connection)
                _run_measured(project, connection, work, meter, running, costs, containment, heard)
                containment.verify_inside()
                if work.drop_baseline:
                    drop_baseline_schema(connection, version_table=work.version_table)
                after = catalog.schema_snapshot(connection, version_table=work.version_table)
            except LeftTransaction as left:
                containment.disarm()
                transaction.rollback()
                raise _not_rehearsable(running, left, "on the target") from None
            except OperationalError as err:
                said = server_said(err)
                if "statement timeout" in said or "lock timeout" in said:
                    busiest = meter.strongest_lock()
                    warnings.append(
                        f"{last_of(running)}: a statement takes more than "
                        f"{options.statement_timeout if 'statement' in said else options.lock_timeout}"
                        f"{f' under {busiest[1].value} on {busiest[0]}' if busiest else ''}; "
                        "the rest was not rehearsed."
                    )
                    after = before
                else:
                    failure = failure_of(running, said, err, work.version_table)
                    after = before
            except DBAPIError as err:
                failure = failure_of(running, server_said(err), err, work.version_table)
                after = before
            finally:
                meter.close()
                containment.disarm()
                if transaction.is_active:
                    transaction.rollback()
        shared_after = catalog.server_objects(connection)
        connection.rollback()
    warnings += _sequences_advanced(target, sequences, meter.relations_locked(), failed=failure is not None)
    run = Run(running=running)
    return Rehearsal(
        where=RehearsalPlace.TARGET,
        description="the target itself, in one transaction that was rolled back",
        with_data=True,
        diff=diff_schemas(before, after),
        costs=tuple(costs),
        failure=failure or _escaped(shared_before, shared_after, run, containment),
        warnings=tuple(warnings),
        sizes=sizes,
        not_rehearsed=tuple(containment.not_rehearsed),
        server_wide=tuple(containment.server_wide),
        server_warnings=tuple(heard.heard),
    )


def _sequence_values(target: Database) -> dict[str, int | None] | None:
    """Read-only: the target's sequences' last values; None when one is locked (the check is then skipped)."""
    try:
        with target.connect() as connection:
            values = catalog.sequence_values(connection)
            connection.rollback()
            return values
    except DBAPIError:
        return None


def _sequences_advanced(
    target: Database, before: dict[str, int | None] | None, locked: frozenset[str], *, failed: bool
) -> list[str]:
    """Warnings for the sequences the rehearsal on the target moved on.

    A sequence counts as the rehearsal's when its backend held a lock on it (nextval() takes
    one until the transaction ends): other sessions take values meanwhile, and those are not
    its doing. After a failure the failing statement's locks were never read, so the others
    that moved are named as possibly the rehearsal's.
    """
    after = _sequence_values(target) if before is not None else None
    if before is None or after is None:
        return []

    def shown(value: int | None) -> str:
        return "unused" if value is None else str(value)

    moved = {name: (before[name], value) for name, value in after.items() if name in before and value != before[name]}
    ours = sorted(name for name in moved if name in locked)
    maybe = sorted(name for name in moved if name not in locked) if failed else []
    warnings = []
    if ours:
        warnings.append(
            "The rehearsal advanced the target's sequences, and nextval() is not rolled back: "
            + ", ".join(f"{name} {shown(moved[name][0])} → {shown(moved[name][1])}" for name in ours)
            + ". The values it took are skipped: the next rows get later ids (a gap), nothing else changed."
        )
    if maybe:
        warnings.append(
            "These sequences of the target moved while the rehearsal ran, by the failing statement or by "
            "other sessions (nextval() is not rolled back): "
            + ", ".join(f"{name} {shown(moved[name][0])} → {shown(moved[name][1])}" for name in maybe)
            + "."
        )
    return warnings


def _run_measured(
    project: AlembicProject,
    connection: Connection,
    work: Work,
    meter: Meter,
    running: list[str],
    costs: list[RevisionCost],
    containment: Containment,
    heard: ServerWarnings,
) -> None:
    """Run the work's revisions under the meter: each started one joins ``running``, each done one's cost ``costs``."""

    def before_each(revision: str) -> None:
        running.append(revision)
        containment.revision = heard.revision = revision
        meter.start()

    def after_each(revision: str, revision_connection: Connection) -> None:
        containment.verify_inside()
        costs.append(meter.finish(revision_connection, revision))

    project.env.run_revisions(
        connection,
        [revision.revision for revision in work.revisions],
        downgrade=work.downgrade,
        before_each=before_each,
        after_each=after_each,
    )


def failure_of(running: list[str], said: str, err: Any, version_table: str) -> RehearsalFailure:
    """What failed: the revision that was running, or, before the first one started, Alembic creating the version
    table env.py names (its schema missing, say) or env.py's own statements."""
    statement = statement_of(err)
    if running:
        return RehearsalFailure(running[-1], said, statement)
    at = FailedAt.VERSION_TABLE if statement and creates_version_table(statement, version_table) else FailedAt.ENV_PY
    return RehearsalFailure(None, said, statement, at)


def last_of(running: list[str]) -> str:
    """The revision that was running when something failed ("?" when none had started)."""
    return running[-1] if running else "?"


def revision_source(project: AlembicProject, revision: RevisionInfo) -> str:
    path = revision.path if revision.path.is_absolute() else project.settings.project_dir / revision.path
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def statement_of(err: Any) -> str | None:
    statement = getattr(err, "statement", None)
    return mask_secrets(str(statement).strip()) if statement else None
