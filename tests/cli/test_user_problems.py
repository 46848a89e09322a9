"""Every user, project and environment problem gets its own message and its documented exit code.

A broken revision graph (a parent no file has, a cycle, a file that is not a revision), env.py
that does not compile, a version table Alembic could not have written, the tool's own records
made by someone else or out of the role's reach, a target ``down`` cannot go to, a URL port out
of range: each is named with the file, table, rows or GRANT it is about and what to do, never
"Internal error", never a traceback, and nothing in the database changes.

The last part reads the README's exit-code table and provokes every code it lists (the ones that
cannot be provoked here are listed, with why): a row that becomes untrue fails here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from typer.testing import Result

from hindsight_migrate.errors import ExitCode
from tests.conftest import REPO, assert_failure, bootstrapped, flatten, invoke
from tests.harness import dbstate
from tests.harness.projects import TINY_BASE, Rev, tiny_project, write_revision
from tests.harness.roles import login_role, may_read_everything, run_sql

REV = "bbbb00000002"
ORPHAN = "cccc00000003"
MISSING = "dead00000000"
ADDS_T2 = Rev(REV, (TINY_BASE,), upgrade='op.execute("CREATE TABLE t2 (id bigint)")', downgrade='op.drop_table("t2")')


def state(url: str) -> dict[str, Any]:
    """What a refusal must leave as it was: dbstate's snapshot, and the tool's audit rows."""
    snapshot = dbstate.snapshot(url)
    snapshot["apply_log"] = (
        dbstate.query(url, "SELECT count(*) FROM hindsight_migrate.apply_log")
        if dbstate.query(url, "SELECT to_regclass('hindsight_migrate.apply_log') IS NOT NULL")[0][0]
        else None
    )
    return snapshot


def clean(result: Result, exit_code: int, *fragments: str) -> None:
    """The documented exit code, the key words, no traceback and no internal error."""
    assert_failure(result, exit_code, *fragments)
    assert "Internal error" not in result.output, result.output
    assert "a bug in hindsight-migrate" not in result.output, result.output


def at_head(tmp_path: Path, url: str, *revisions: Rev) -> str:
    """A tiny project bootstrapped and upgraded to its head; returns the -c argument."""
    ini = bootstrapped(tiny_project(tmp_path / "p", *(revisions or (ADDS_T2,))), url)
    applied = invoke("-c", ini, "--url", url, "up", "--yes", "--no-rehearsal")
    assert applied.exit_code == 0, applied.output
    return ini


def versions_of(ini: str) -> Path:
    return Path(ini).parent / "migrations" / "versions"


def write_raw_revision(ini: str, name: str, body: str) -> Path:
    path = versions_of(ini) / name
    path.write_text(body)
    return path


def revision_body(revision: object, down_revision: object, extra: str = "") -> str:
    return (
        f'"""a revision"""\nrevision = {revision!r}\ndown_revision = {down_revision!r}\nbranch_labels = None\n'
        f"{extra or 'depends_on = None'}\n\n\ndef upgrade() -> None:\n    pass\n\n\n"
        "def downgrade() -> None:\n    pass\n"
    )


# -- a revision graph Alembic cannot build -------------------------------------------------


def test_a_revision_whose_parent_no_file_has_is_named_by_every_command(tmp_path: Path, database_url: str) -> None:
    ini = at_head(tmp_path, database_url)
    assert invoke("-c", ini, "history", "--offline").exit_code == 0  # the graph cache is written, or tried
    write_raw_revision(ini, f"{ORPHAN}.py", revision_body(ORPHAN, MISSING))
    before = state(database_url)

    for command in (
        ["history", "--offline"],
        ["history"],
        ["status"],
        ["check"],
        ["lint"],
        ["lint", "all"],
        ["up", "--yes", "--no-rehearsal"],
        ["up", "--dry-run"],
        ["down", "--yes", "--no-rehearsal"],
    ):
        result = invoke("-c", ini, "--url", database_url, *command)

        clean(
            result,
            ExitCode.REVISION,
            f"Revision {ORPHAN} (migrations/versions/{ORPHAN}.py) has down_revision = '{MISSING}'",
            "no revision file of this project has that id",
        )
    assert state(database_url) == before


@dataclass(frozen=True)
class Broken:
    """A revision folder Alembic cannot make a graph of, and the words that must name what is wrong."""

    name: str
    make: Callable[[str], object]
    words: tuple[str, ...]


def _cycle(ini: str) -> None:
    write_raw_revision(ini, "cccc00000003.py", revision_body("cccc00000003", "dddd00000004"))
    write_raw_revision(ini, "dddd00000004.py", revision_body("dddd00000004", "cccc00000003"))


def _dangling_link(ini: str) -> None:
    os.symlink(Path(ini).parent / "gone.py", versions_of(ini) / "linked.py")


BROKEN = [
    Broken(
        "depends_on a revision no file has",
        lambda ini: write_raw_revision(
            ini, f"{ORPHAN}.py", revision_body(ORPHAN, REV, extra=f"depends_on = {MISSING!r}")
        ),
        (f"has depends_on = '{MISSING}'", f"migrations/versions/{ORPHAN}.py"),
    ),
    Broken(
        "two parents no file has",
        lambda ini: (
            write_raw_revision(ini, f"{ORPHAN}.py", revision_body(ORPHAN, MISSING)),
            write_raw_revision(ini, "eeee00000005.py", revision_body("eeee00000005", "ffff00000006")),
        ),
        ("2 revisions name a parent that no revision file", MISSING, "ffff00000006", "eeee00000005.py"),
    ),
    Broken(
        "a cycle",
        _cycle,
        (
            "cccc00000003, dddd00000004 cannot be put in order",
            "migrations/versions/cccc00000003.py",
            "migrations/versions/dddd00000004.py",
        ),
    ),
    Broken(
        "a revision that is its own parent",
        lambda ini: write_raw_revision(ini, f"{ORPHAN}.py", revision_body(ORPHAN, ORPHAN)),
        (f"Revision {ORPHAN} (migrations/versions/{ORPHAN}.py) names itself as its down_revision",),
    ),
    Broken(
        "a down_revision that is not a string",
        lambda ini: write_raw_revision(ini, f"{ORPHAN}.py", revision_body(ORPHAN, 5)),
        (f"migrations/versions/{ORPHAN}.py", "down_revision is 5"),
    ),
    Broken(
        "a revision id that is not a string",
        lambda ini: write_raw_revision(ini, f"{ORPHAN}.py", revision_body(5, REV)),
        (f"migrations/versions/{ORPHAN}.py", "revision identifiers are not text"),
    ),
    Broken(
        "an '@' in a revision id",
        lambda ini: write_raw_revision(ini, "cc@c.py", revision_body("cc@c", REV)),
        ("migrations/versions/cc@c.py", "'@' not allowed in revision identifier 'cc@c'"),
    ),
    Broken(
        "a Python file that is not a revision",
        lambda ini: write_raw_revision(ini, "helpers.py", "SOMETHING = 1\n"),
        ("migrations/versions/helpers.py", "not a revision file: it sets no revision and down_revision"),
    ),
    Broken(
        "a link to a file that is gone",
        _dangling_link,
        ("migrations/versions/linked.py", "which does not exist"),
    ),
]


@pytest.mark.parametrize("broken", BROKEN, ids=[b.name for b in BROKEN])
def test_a_revision_folder_alembic_cannot_make_a_graph_of_names_the_file(tmp_path: Path, broken: Broken) -> None:
    ini = str(tiny_project(tmp_path / "p", ADDS_T2))
    broken.make(ini)

    for command in (["history", "--offline"], ["lint", "all"], ["history", "--offline", "--json"]):
        result = invoke("-c", ini, *command)

        clean(result, ExitCode.REVISION, *broken.words)


# -- env.py and the migrations folder ----------------------------------------------------


def test_a_syntax_error_in_env_py_is_the_projects_code_not_a_revision_file(tmp_path: Path, database_url: str) -> None:
    ini = at_head(tmp_path, database_url)
    env_py = Path(ini).parent / "migrations" / "env.py"
    lines = env_py.read_text().splitlines()
    env_py.write_text("\n".join([*lines, "def broken(:", ""]))
    before = state(database_url)

    for command in (["status"], ["history"], ["up", "--yes", "--no-rehearsal"], ["lint", "all"]):
        result = invoke("-c", ini, "--url", database_url, *command)

        clean(
            result,
            ExitCode.PROJECT_CODE,
            f"The project's code does not compile: migrations/env.py, line {len(lines) + 1}",
            "fix it and run again",
        )
        assert "revision file" not in flatten(result.output), result.output
    assert state(database_url) == before


def test_a_missing_env_py_is_a_configuration_error(tmp_path: Path, database_url: str) -> None:
    ini = at_head(tmp_path, database_url)
    (Path(ini).parent / "migrations" / "env.py").unlink()
    before = state(database_url)

    for command in (["status"], ["up", "--yes", "--no-rehearsal"], ["lint", "all"]):
        result = invoke("-c", ini, "--url", database_url, *command)

        clean(result, ExitCode.CONFIG, "There is no env.py in", "restore it")
    assert invoke("-c", ini, "history", "--offline").exit_code == 0  # the graph alone needs no env.py
    assert state(database_url) == before


def test_a_script_location_that_is_a_file_is_a_configuration_error(tmp_path: Path) -> None:
    ini = tiny_project(tmp_path / "p", ADDS_T2)
    ini.write_text(ini.read_text().replace("%(here)s/migrations", "%(here)s/v1.sql"))

    # Before: an empty graph (0 revisions) offline, and an internal error online.
    for command in (["history", "--offline"], ["lint", "all"]):
        result = invoke("-c", str(ini), *command)

        clean(result, ExitCode.CONFIG, "script_location", "v1.sql, which is a file, not the migrations folder")


def test_a_version_location_that_is_a_file_is_a_configuration_error(tmp_path: Path) -> None:
    ini = tiny_project(tmp_path / "p", ADDS_T2)
    located = "version_locations = %(here)s/v1.sql\npath_separator = os\nsqlalchemy.url ="
    ini.write_text(ini.read_text().replace("sqlalchemy.url =", located))

    result = invoke("-c", str(ini), "history", "--offline")

    clean(result, ExitCode.CONFIG, "v1.sql", "it is a file, not a folder, so no revision would be found")


# -- the version table ---------------------------------------------------------------------


@dataclass(frozen=True)
class VersionTable:
    name: str
    sql: str
    words: tuple[str, ...]


VERSION_TABLES = [
    VersionTable(
        "the same revision twice",
        "ALTER TABLE alembic_version DROP CONSTRAINT alembic_version_pkc; "
        f"INSERT INTO alembic_version VALUES ('{REV}')",
        (f"The version table alembic_version holds {REV} more than once", "Keep one row per head"),
    ),
    VersionTable(
        "a revision and one it stands on",
        f"INSERT INTO alembic_version VALUES ('{TINY_BASE}')",
        (
            f"The version table alembic_version holds {TINY_BASE}, {REV}, but {TINY_BASE} is below {REV}",
            f"DELETE FROM alembic_version WHERE version_num = '{TINY_BASE}'",
        ),
    ),
    VersionTable(
        "a version_num of another type",
        "ALTER TABLE alembic_version ALTER version_num TYPE integer USING 7",
        ("The version table alembic_version holds 7, which is not a revision id", "VARCHAR(32)"),
    ),
    VersionTable(
        "a revision id with spaces",
        f"UPDATE alembic_version SET version_num = ' {REV} '",
        (f"The version table alembic_version holds ' {REV} ' (did it mean {REV}?)",),
    ),
]


@pytest.mark.parametrize("table", VERSION_TABLES, ids=[t.name for t in VERSION_TABLES])
def test_a_version_table_alembic_could_not_have_written_is_named_with_its_rows(
    tmp_path: Path, database_url: str, table: VersionTable
) -> None:
    ini = at_head(tmp_path, database_url)
    run_sql(database_url, table.sql)
    before = state(database_url)

    for command in (
        ["status"],
        ["check"],
        ["up", "--yes", "--no-rehearsal"],
        ["down", "--yes", "--no-rehearsal"],
        ["down", "--sql"],
    ):
        result = invoke("-c", ini, "--url", database_url, *command)

        clean(result, ExitCode.REFUSED, *table.words, "Nothing was changed")
        assert "env.py" not in flatten(result.output), result.output  # not blamed on the project's code
    # history still shows the graph, and says why the database's state is unknown.
    history = invoke("-c", ini, "--url", database_url, "history")
    assert history.exit_code == 0, history.output
    assert all(flatten(words) in flatten(history.output) for words in table.words), history.output
    # It was reached: the database is not called unreachable.
    assert "Where the database stands is unknown" in flatten(history.output), history.output
    assert "not reachable" not in history.output
    assert state(database_url) == before


def test_a_version_table_the_role_may_not_read_names_the_grant(
    tmp_path: Path, database_url: str, admin_engine: Engine
) -> None:
    ini = at_head(tmp_path, database_url)
    with login_role(admin_engine, database_url) as role:
        run_sql(database_url, f'GRANT USAGE ON SCHEMA hindsight_migrate TO "{role.name}"')
        before = state(database_url)

        result = invoke("-c", ini, "--url", role.url, "status")

        clean(
            result,
            ExitCode.REFUSED,
            "The version table alembic_version cannot be read by this role",
            f"GRANT SELECT ON alembic_version TO {role.name}",
        )
        assert state(database_url) == before


def test_a_database_at_a_revision_no_file_has_is_said_so_by_up_down_and_lint(tmp_path: Path, database_url: str) -> None:
    ini = at_head(tmp_path, database_url)
    run_sql(database_url, "UPDATE alembic_version SET version_num = 'deadbeef0000'")
    before = state(database_url)

    for command in (["up", "--yes", "--no-rehearsal"], ["down", "--yes", "--no-rehearsal"], ["lint"]):
        result = invoke("-c", ini, "--url", database_url, *command)

        clean(result, ExitCode.REVISION, "The database is at deadbeef0000, which no revision file of this project has")
    assert state(database_url) == before


# -- the tool's own records ----------------------------------------------------------------


@dataclass(frozen=True)
class OtherLog:
    name: str
    sql: str
    words: tuple[str, ...]


OTHER_LOGS = [
    OtherLog(
        "other columns",
        "DROP TABLE hindsight_migrate.apply_log; "
        "CREATE TABLE hindsight_migrate.apply_log (id serial PRIMARY KEY, note text)",
        ("hindsight_migrate.apply_log", "it has no columns command, started_at"),
    ),
    OtherLog(
        "a column of another type",
        "ALTER TABLE hindsight_migrate.apply_log ALTER started_at TYPE text",
        ("hindsight_migrate.apply_log", "column started_at is text, not timestamp with time zone"),
    ),
]


@pytest.mark.parametrize("log", OTHER_LOGS, ids=[log.name for log in OTHER_LOGS])
def test_an_audit_log_of_another_shape_is_named_and_reports_still_show_the_rest(
    tmp_path: Path, database_url: str, log: OtherLog
) -> None:
    ini = bootstrapped(tiny_project(tmp_path / "p", ADDS_T2), database_url)  # REV pending
    run_sql(database_url, log.sql)
    before = state(database_url)

    history = invoke("-c", ini, "--url", database_url, "history")
    status = invoke("-c", ini, "--url", database_url, "status")

    assert history.exit_code == 0, history.output
    assert f"is at {TINY_BASE}; 1 pending" in flatten(history.output)
    assert status.exit_code == ExitCode.BEHIND, status.output
    assert f"Pending: {REV}" in flatten(status.output)
    for report in (history, status):
        clean(report, report.exit_code, *log.words, "is not the table hindsight-migrate keeps there", "RENAME TO")

    applied = invoke("-c", ini, "--url", database_url, "up", "--yes", "--no-rehearsal")

    clean(
        applied,
        ExitCode.REFUSED,
        *log.words,
        "nothing was changed",
        "ALTER TABLE hindsight_migrate.apply_log RENAME TO apply_log_other",
    )
    assert state(database_url) == before
    assert dbstate.alembic_version(database_url) == [TINY_BASE]


def test_a_tool_schema_the_role_may_not_use_is_named_with_its_grant(
    tmp_path: Path, database_url: str, admin_engine: Engine
) -> None:
    ini = bootstrapped(tiny_project(tmp_path / "p", ADDS_T2), database_url)  # as postgres; REV pending
    with login_role(admin_engine, database_url, "CREATEDB") as role:
        may_read_everything(database_url, role.name)
        run_sql(database_url, f'REVOKE USAGE ON SCHEMA hindsight_migrate FROM "{role.name}"')
        before = state(database_url)
        reading = f"role {role.name} may not use schema hindsight_migrate"
        grant = f"GRANT USAGE ON SCHEMA hindsight_migrate TO {role.name}"

        history = invoke("-c", ini, "--url", role.url, "history")
        status = invoke("-c", ini, "--url", role.url, "status")
        check = invoke("-c", ini, "--url", role.url, "check")

        # Reading commands say what they could not read, and why, and show the rest.
        assert history.exit_code == 0, history.output
        assert f"is at {TINY_BASE}; 1 pending" in flatten(history.output)
        assert status.exit_code == ExitCode.BEHIND, status.output
        assert check.exit_code == 0, check.output
        assert "applied files (skipped: the checksums cannot be read)" in flatten(check.output)
        for report in (history, status, check):
            clean(report, report.exit_code, reading, grant)

        # Commands that would write are refused before anything changes, naming the GRANT.
        for command in (
            ["up", "--yes", "--no-rehearsal"],
            ["up", "--dry-run"],
            ["up", "--yes", "--rehearse-on", "target"],
        ):
            result = invoke("-c", ini, "--url", role.url, *command)

            clean(
                result,
                ExitCode.REFUSED,
                f"Role {role.name} may not write the tool's records in schema hindsight_migrate",
                f"GRANT USAGE, CREATE ON SCHEMA hindsight_migrate TO {role.name}",
                "nothing was changed",
            )
        assert state(database_url) == before
        assert dbstate.scratch_databases_of(database_url) == []


# -- targets up and down cannot go to ------------------------------------------------------


def test_down_to_a_revision_ahead_of_the_database_is_refused_with_what_to_do(tmp_path: Path, database_url: str) -> None:
    ini = bootstrapped(tiny_project(tmp_path / "p", ADDS_T2), database_url)  # at the baseline
    before = state(database_url)

    for command in (
        ["down", "--to", REV, "--yes"],
        ["down", "--to", REV[:6], "--dry-run"],
        ["down", "--to", REV, "--sql"],
    ):
        result = invoke("-c", ini, "--url", database_url, *command)

        clean(
            result,
            ExitCode.REVISION,
            f"{REV} is not below where the database stands ({TINY_BASE}): down only goes back",
            f"To go forward, use hindsight-migrate up {REV}",
        )
        assert "Nothing to drop" not in result.output
    assert state(database_url) == before


def test_more_steps_than_there_are_revisions_is_said_in_steps(tmp_path: Path, database_url: str) -> None:
    ini = at_head(tmp_path, database_url)
    before = state(database_url)

    down = invoke("-c", ini, "--url", database_url, "down", "--steps", "5", "--yes")
    up = invoke("-c", ini, "--url", database_url, "up", "+3", "--dry-run")

    clean(down, ExitCode.REVISION, f"'-5' goes 5 step(s) back from {REV}, but fewer revisions are applied")
    clean(up, ExitCode.REVISION, f"'+3' goes 3 step(s) forward from {REV}, but fewer revisions are pending")
    assert state(database_url) == before


def test_two_revisions_on_one_parent_make_a_branch_the_reviewer_is_told_about(
    tmp_path: Path, database_url: str
) -> None:
    other = Rev("dddd00000004", (TINY_BASE,), upgrade='op.execute("CREATE TABLE t3 (id bigint)")')
    ini = bootstrapped(tiny_project(tmp_path / "p", ADDS_T2, other), database_url)

    plan = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--no-rehearsal")
    one_head = invoke("-c", ini, "--url", database_url, "up", "head", "--dry-run", "--no-rehearsal")

    assert plan.exit_code == 0, plan.output
    assert f"The database will stand on 2 heads ({REV}, dddd00000004)" in flatten(plan.output)
    clean(one_head, ExitCode.REVISION, "'head' names one head, and the chain has 2", "hindsight-migrate merge")

    assert invoke("-c", ini, "--url", database_url, "up", "--yes", "--no-rehearsal").exit_code == 0
    before = state(database_url)

    back = invoke("-c", ini, "--url", database_url, "down", "--yes", "--no-rehearsal")

    clean(back, ExitCode.REVISION, "'-1' is ambiguous from", "the database stands on 2 heads", "down --to REV")
    assert "UserWarning" not in back.output
    assert state(database_url) == before


# -- the URL -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("postgresql://u:sekret99@127.0.0.1:99999/db", "99999"),
        ("postgresql://u:sekret99@127.0.0.1:65536/db", "65536"),
        ("postgresql://u:sekret99@127.0.0.1:0/db", "0"),
        ("postgresql://u:sekret99@127.0.0.1/db?port=70000", "70000"),
    ],
)
def test_a_port_out_of_range_is_a_configuration_error_with_the_password_masked(
    tmp_path: Path, url: str, port: str
) -> None:
    ini = str(tiny_project(tmp_path / "p", ADDS_T2))

    for command in (["status"], ["up", "--dry-run"]):
        result = invoke("-c", ini, "--url", url, *command)

        clean(result, ExitCode.CONFIG, "is not a valid URL", f"its port {port} is not a TCP port (1 to 65535)")
        assert "sekret99" not in result.output


# -- the README's exit-code table, made true -----------------------------------------------


def readme_exit_codes() -> dict[str, str]:
    """The rows of README's "## Exit codes" table: code cell -> meaning."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\|\s*([^|]+?)\s*\|\s*(.+?)\s*\|", line.strip())
        if match and match.group(1) not in ("code", "---"):
            rows[match.group(1)] = match.group(2)
    return rows


@dataclass
class Provoke:
    """A folder of the test's own and a fresh database on the test server."""

    tmp_path: Path
    url: str

    def project(self, *revisions: Rev, settings: str = "") -> str:
        return str(tiny_project(self.tmp_path / "p", *revisions, settings=settings))

    def run(self, ini: str, *args: str) -> Result:
        return invoke("-c", ini, "--url", self.url, *args)


def _ok(p: Provoke) -> list[Result]:
    return [invoke("-c", p.project(ADDS_T2), "history", "--offline")]


def _usage(p: Provoke) -> list[Result]:
    return [invoke("-c", p.project(ADDS_T2), "down", "--to", REV, "--steps", "1")]


def _config(p: Provoke) -> list[Result]:
    return [invoke("-c", str(p.tmp_path / "nowhere.ini"), "history", "--offline")]


def _connection(p: Provoke) -> list[Result]:
    return [invoke("-c", p.project(ADDS_T2), "--url", "postgresql://postgres@127.0.0.1:1/postgres", "status")]


def _revision(p: Provoke) -> list[Result]:
    return [invoke("-c", p.project(ADDS_T2), "lint", "ffffffff:heads")]


def _refused(p: Provoke) -> list[Result]:
    run_sql(p.url, "CREATE TABLE already_here (id int)")
    return [p.run(p.project(ADDS_T2), "bootstrap", "--yes")]


def _aborted(p: Provoke) -> list[Result]:
    return [p.run(p.project(ADDS_T2), "bootstrap")]  # no terminal (conftest), no --yes


def _locked(p: Provoke) -> list[Result]:
    from hindsight_migrate.postgres.locking import LOCK_NAMESPACE, MIGRATION_LOCK

    ini = p.project(ADDS_T2)
    engine = create_engine(p.url, poolclass=NullPool)
    try:
        with engine.connect() as holder:
            holder.execute(text("SELECT pg_advisory_lock(:a, :b)"), {"a": LOCK_NAMESPACE, "b": MIGRATION_LOCK})
            holder.commit()
            return [p.run(ini, "bootstrap", "--yes", "--lock-wait", "0.2")]
    finally:
        engine.dispose()


def _failed(p: Provoke) -> list[Result]:
    ini = p.project(Rev(REV, (TINY_BASE,), upgrade='op.execute("SELECT 1/0")'))
    return [p.run(ini, "up", "--yes", "--no-rehearsal")]


def _behind(p: Provoke) -> list[Result]:
    return [p.run(bootstrapped(p.project(ADDS_T2), p.url), "status")]


def _diverged(p: Provoke) -> list[Result]:
    ini = bootstrapped(p.project(ADDS_T2), p.url)
    run_sql(p.url, "UPDATE alembic_version SET version_num = 'deadbeef0000'")
    return [p.run(ini, "status")]


def _tampered(p: Provoke) -> list[Result]:
    ini = bootstrapped(p.project(ADDS_T2), p.url)
    assert p.run(ini, "up", "--yes", "--no-rehearsal").exit_code == 0
    path = versions_of(ini) / f"{REV}.py"
    path.write_text(path.read_text() + "\nEDITED_AFTER_IT_WAS_APPLIED = True\n")  # code: a comment is only reformatted
    return [p.run(ini, "status")]


def _check_failed(p: Provoke) -> list[Result]:
    # A varchar of the project's own (the version table's is Alembic's, and is not linted).
    varchar = Rev("dddd00000004", (TINY_BASE,), upgrade='op.execute("CREATE TABLE t3 (name varchar(20))")')
    ini = p.project(ADDS_T2, varchar, settings="lint_error_rules = prefer-text-field")
    return [invoke("-c", ini, "lint", "all")]


def _project_code(p: Provoke) -> list[Result]:
    ini = p.project(ADDS_T2)
    write_revision(versions_of(ini), Rev(ORPHAN, (REV,)))
    path = versions_of(ini) / f"{ORPHAN}.py"
    path.write_text(path.read_text().replace("from alembic import op", "from alembic import op\nraise KeyError('x')"))
    return [invoke("-c", ini, "history", "--offline")]


def _detailed(p: Provoke) -> list[Result]:
    """``up --dry-run --detailed-exitcode``: 0 nothing to do, 2 changes, 3 destructive (a table with rows dropped)."""
    drops = Rev("eeee00000005", (REV,), upgrade='op.drop_table("things")', downgrade="pass")
    ini = bootstrapped(p.project(ADDS_T2, drops), p.url)
    run_sql(p.url, "INSERT INTO things (name) VALUES ('kept')")
    nothing = p.run(ini, "up", TINY_BASE, "--dry-run", "--detailed-exitcode", "--no-rehearsal")
    changes = p.run(ini, "up", REV, "--dry-run", "--detailed-exitcode", "--no-rehearsal")
    destructive = p.run(ini, "up", "--dry-run", "--detailed-exitcode")  # the rehearsal counts the rows lost
    return [nothing, changes, destructive]


def _machine(p: Provoke) -> list[Result]:
    """A temporary folder that is not private: another user planted a link where the tool keeps its files."""
    import os
    import tempfile

    temporary = p.tmp_path / "tmp"
    temporary.mkdir()
    (temporary / f"hindsight-migrate-{os.getuid()}").symlink_to(p.tmp_path)
    ini = p.project(ADDS_T2)
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = str(temporary), None
    try:
        return [invoke("-c", ini, "lint", "all")]
    finally:
        if saved[0] is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = saved[0]
        tempfile.tempdir = saved[1]


# README code cell -> how to provoke it (the results, in the order of the codes in the cell).
PROVOKE: dict[str, Callable[[Provoke], list[Result]]] = {
    "0": _ok,
    "2": _usage,
    "3": _config,
    "4": _connection,
    "5": _revision,
    "6": _refused,
    "7": _aborted,
    "8": _locked,
    "9": _failed,
    "10": _behind,
    "11": _diverged,
    "12": _tampered,
    "13": _check_failed,
    "14": _project_code,
    "15": _machine,
    "0 / 2 / 3": _detailed,
}
CANNOT_PROVOKE_HERE = {
    "1": "an internal error is a bug of the tool's: there is none to provoke on purpose",
    "130": "Ctrl-C or SIGTERM: a signal to a real process (tests/test_faults.py and test_live_traffic.py send them)",
}


def test_the_readme_exit_code_table_has_a_case_for_every_row() -> None:
    codes = readme_exit_codes()
    assert {"0", "1", "2", "5", "6", "14", "130"} <= set(codes), codes  # the table was found and read
    unknown = set(codes) - set(PROVOKE) - set(CANNOT_PROVOKE_HERE)
    assert not unknown, f"README's exit-code table has codes this test cannot provoke: {sorted(unknown)}"


def provokable_codes() -> list[str]:
    """The README's codes this file provokes, in the table's order (0, 2, …, 14, then "0 / 2 / 3")."""
    codes: set[str] = set(readme_exit_codes()) & set(PROVOKE)
    return sorted(codes, key=lambda code: (len(code), code))


@pytest.mark.parametrize("code", provokable_codes())
def test_every_row_of_the_readme_exit_code_table_that_can_be_provoked_is(
    code: str, tmp_path: Path, database_url: str
) -> None:
    results = PROVOKE[code](Provoke(tmp_path, database_url))

    expected = [int(part) for part in code.split("/")]
    assert [result.exit_code for result in results] == expected, "\n\n".join(r.output for r in results)
    for result in results:
        assert "Traceback" not in result.output, result.output
        if result.exit_code != ExitCode.INTERNAL:
            assert "Internal error" not in result.output, result.output
