"""Run the pending revisions for real somewhere safe, and measure what they did.

Where (``--rehearse-on``):

* ``scratch`` (default): a database made from the target on the same server — its schema
  (``pg_dump --schema-only``), its version table and the tool's records, and all of its
  data too when it is small — always dropped afterwards, also on Ctrl-C and SIGTERM
  (:mod:`~hindsight_migrate.postgres.scratch` makes, fills and drops it). Revisions that commit or
  leave their transaction (``autocommit_block()``) run there like any other, and the
  target's tables are never locked beyond ``pg_dump``'s brief ACCESS SHARE.
* ``target``: inside one transaction on the target that is always rolled back. A revision
  that would leave that transaction is refused as not rehearsable before it can commit, and
  the rehearsal — which takes the same locks the migration would — runs under a
  ``lock_timeout`` and a ``statement_timeout`` budget. Sequence values it takes stay taken
  (nextval() is not transactional), and the plan says which.
* a URL: another database with the same schema (staging, a restored backup), which the
  rehearsal changes for real: it must be disposable, and is refused when it is the target
  itself, however the URL is spelled.

What is measured, per revision: the schema before and after (catalog), each statement's
time and the relation locks its backend held (``pg_locks`` for ``pg_backend_pid()``), and
which tables and indexes were rewritten (their ``pg_relation_filenode()`` changed).

A copy that is not the target cannot show the applying role's privileges there (a role that
is not a superuser owns everything in its own copy): what the statements need on the target
(ownership, CREATE on a schema or the database) and what the apply itself needs (the tool's
records, the version table) are checked on the target's catalog before anything is applied.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hindsight_migrate.alembic_api import AlembicProject
from hindsight_migrate.config import DatabaseSource, normalize_url
from hindsight_migrate.errors import ProjectCodeFailed, Refused, Section
from hindsight_migrate.postgres import audit, catalog
from hindsight_migrate.postgres.database import (
    Database,
    open_database,
)
from hindsight_migrate.postgres.sample import TableSample, sample_shares, sampled_rows
from hindsight_migrate.postgres.scratch import ScratchInTheMaking, scratch_copy
from hindsight_migrate.review.bootstrap import BootstrapPlan
from hindsight_migrate.review.kinds import Basis
from hindsight_migrate.review.rehearsal.model import Rehearsal, RehearsalOptions, RehearsalPlace, Work
from hindsight_migrate.review.rehearsal.predict import calibration, with_holds
from hindsight_migrate.review.rehearsal.privileges import refuse_unless_the_apply_may_record, with_privileges_checked
from hindsight_migrate.review.rehearsal.strategies import rehearse_committing, rehearse_on_target
from hindsight_migrate.revisions import RevisionInfo
from hindsight_migrate.words import human_bytes

if TYPE_CHECKING:
    pass



def rehearse(
    project: AlembicProject,
    target: Database,
    revisions: tuple[RevisionInfo, ...],
    options: RehearsalOptions,
    *,
    bootstrap: BootstrapPlan | None = None,
    downgrade: bool = False,
    drop_baseline: bool = False,
    scratch: ScratchInTheMaking | None = None,
) -> Rehearsal:
    """Run ``revisions`` somewhere that is not the target (or rolled back on it) and measure.

    ``bootstrap`` runs V1 first (an empty database going up); ``downgrade`` reverts the
    revisions instead; ``drop_baseline`` then drops what V1 left. Never changes the target:
    a scratch copy is dropped afterwards; the target mode rolls back and refuses any
    revision that would commit. ``scratch``: the scratch database, when the caller started
    making it in advance (and drops it).
    """
    try:
        return _rehearse(project, target, revisions, options, bootstrap, downgrade, drop_baseline, scratch)
    except ProjectCodeFailed as problem:
        # The same message as at apply time, and the reader must know the target was not touched.
        problem.with_section(Section("Where", "in the rehearsal, before anything was applied: the target is unchanged"))
        raise


def _rehearse(
    project: AlembicProject,
    target: Database,
    revisions: tuple[RevisionInfo, ...],
    options: RehearsalOptions,
    bootstrap: BootstrapPlan | None,
    downgrade: bool,
    drop_baseline: bool,
    scratch: ScratchInTheMaking | None,
) -> Rehearsal:
    work = Work(revisions, downgrade, bootstrap, drop_baseline, project.env.version_table.name)
    with target.connect() as connection:
        # The target's tables, but for the version table: the tool's bookkeeping, which every revision writes.
        sizes = {
            table: size
            for table, size in catalog.table_sizes(connection).items()
            if table.rpartition(".")[2] != work.version_table
        }
        # What the scratch copy needs to know, on the same connection.
        copying = options.where.place is RehearsalPlace.SCRATCH
        with_data = copying and catalog.database_size(connection) <= options.data_limit_bytes
        blank = copying and catalog.is_blank(connection)
        role = catalog.role_context(connection)
        calibrated = calibration(audit.recorded_holds(connection)) if copying and not with_data else None
        # A role that is not a superuser owns everything in its copy: it gets back there exactly the
        # privileges it has on the target, so what the target would refuse fails in the rehearsal.
        mirrored = copying and not blank and not role.superuser
        privileges = catalog.privileges_script(connection, version_table=work.version_table) if mirrored else None
        connection.rollback()
    if options.where.place is RehearsalPlace.TARGET:
        # There the revisions meet the role's real privileges.
        rehearsal = with_holds(rehearse_on_target(project, target, work, options, sizes), basis=Basis.MEASURED)
    elif options.where.place is RehearsalPlace.SCRATCH:
        # Over the data limit, a sample of each table's rows: lock times are predicted from it.
        not_sampled: dict[str, str] = {}
        budget = min(options.data_limit_bytes, options.sample_bytes)
        shares = None if with_data or blank or not budget else sample_shares(sizes, budget)
        # A superuser restores the target's owners and grants, so the rehearsal meets them as the
        # apply will. Any other role's copy is its own: what that hides is checked on the target below.
        with scratch_copy(
            target,
            scratch,
            with_data=with_data,
            blank=blank,
            version_table=work.version_table,
            keep_owners=role.superuser,
            privileges=privileges,
            sample=shares,
            not_sampled=not_sampled,
        ) as copy:
            samples = sampled_rows(copy, shares) if shares else {}
            words = _scratch_words(with_data, samples, sizes, options.data_limit_bytes)
            if privileges is not None:
                words += f"; run as {role.role} with its privileges on the target"
            rehearsal = rehearse_committing(project, copy, work, RehearsalPlace.SCRATCH, words, with_data, sizes)
        warnings = [
            f"No rows of {table} could be sampled ({said}): its lock times are unknown."
            for table, said in sorted(not_sampled.items())
        ]
        rehearsal = dataclasses.replace(rehearsal, samples=samples, warnings=(*rehearsal.warnings, *warnings))
        basis = Basis.MEASURED if with_data or blank else Basis.PREDICTED if samples else Basis.UNKNOWN
        rehearsal = with_holds(rehearsal, basis=basis, calibrated=calibrated)
    else:
        url = normalize_url(options.where.url or "", "--rehearse-on")
        other = open_database(DatabaseSource(url=url, origin="--rehearse-on"))
        try:
            _refuse_the_target_itself(target, other)
            rehearsal = rehearse_committing(
                project,
                other,
                work,
                RehearsalPlace.URL,
                f"{other.masked_url} (--rehearse-on; now changed), its figures taken as measured at full size",
                True,
                sizes,
            )
        finally:
            other.dispose()
        # A full-size clone of production (a thin clone, a branch) times what the apply will: measured.
        rehearsal = with_holds(rehearsal, basis=Basis.MEASURED)
    if role.superuser:
        return rehearsal  # nothing on the target is out of its reach
    if options.where.place is not RehearsalPlace.TARGET:
        rehearsal = with_privileges_checked(rehearsal, target, role)
        if sizes:  # a target with tables of its own
            note = privileges_not_reproduced(privileges)
            rehearsal = dataclasses.replace(rehearsal, warnings=(*rehearsal.warnings, note))
    if rehearsal.ok:  # a revision that fails is the first thing to fix; then what the tool itself needs
        with target.connect() as connection:
            refuse_unless_the_apply_may_record(connection, role, work)
            connection.rollback()
    return rehearsal


def _scratch_words(
    with_data: bool, samples: dict[str, TableSample], sizes: dict[str, catalog.TableSize], limit_bytes: int
) -> str:
    if with_data:
        if not sizes:
            return "a scratch copy of the target, which has no tables yet"
        if all(size.estimated_rows == 0 and size.rows_exact for size in sizes.values()):
            return "a scratch copy of the target, whose tables hold no rows"
        return "a scratch copy of the target with its data"
    limit = f"{limit_bytes // (1024 * 1024)} MB"
    samples = {table: sample for table, sample in samples.items() if not sample.partitioned}  # counted once
    partial = [sample for sample in samples.values() if not sample.whole]
    if not samples:
        return (
            f"a scratch copy of the target's schema only (the data is over {limit}), so data-dependent failures "
            "are not caught and lock times on tables with rows are unknown"
        )
    held = human_bytes(sum(sample.total_bytes for sample in samples.values()))
    whole = human_bytes(sum(sizes[table].total_bytes for table in samples if table in sizes))
    if not partial:
        return f"a scratch copy of the target with all its rows ({held}), tables copied one by one"
    percents = sorted(sample.percent for sample in partial)
    spread = f"{percents[0]:.2g} %" if percents[0] == percents[-1] else f"{percents[0]:.2g}-{percents[-1]:.2g} %"
    return (
        f"a scratch copy with a {held} sample of the target's {whole} (over the {limit} data limit; "
        f"{len(partial)} table(s) sampled at {spread}): their lock times are predicted, and failures in rows "
        "left out are not caught"
    )


def privileges_not_reproduced(mirrored: str | None) -> str:
    """What a rehearsal by a role that is not a superuser cannot show of its privileges on the target, in words."""
    if mirrored is not None:
        return (
            "Privileges: the copy gave the applying role its privileges on the target's tables, sequences, schemas "
            "and functions, and ownership of the target's tables was checked from the measured diff; ownership "
            "of functions, types and other objects, and row-level security policies, were not reproduced."
        )
    return (
        "Privileges: the rehearsal ran as the owner of everything it touched; what the statements and the measured "
        "diff need (ownership of the target's tables, CREATE on schemas and the database) was checked on the "
        "target, but row privileges (INSERT, UPDATE, DELETE, TRUNCATE, triggers) were not reproduced."
    )


def _refuse_the_target_itself(target: Database, other: Database) -> None:
    """--rehearse-on URL commits what it rehearses: refuse a URL that reaches the target, compared by
    what the server says it is (cluster, server start, database oid), not by how the URL is spelled:
    a socket for 127.0.0.1, localhost, another user, extra options all reach the same database."""
    with target.connect() as connection:
        here = catalog.database_identity(connection)
        connection.rollback()
    with other.connect() as connection:
        there = catalog.database_identity(connection)
        connection.rollback()
    if here.same_as(there):
        raise Refused(
            f"--rehearse-on {other.masked_url} is the target itself: it reaches the same database as "
            f"{target.masked_url}, and a rehearsal there would apply the revisions for real. Nothing was "
            "changed. Name a disposable database with the same schema (staging, a restored backup), or "
            "rehearse on a scratch copy (the default) or with --rehearse-on target (rolled back).",
            sections=(
                Section("Same database", f"{there.name} (oid {there.oid}), server started {there.server_started}"),
            ),
        )
