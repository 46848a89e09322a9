"""``fleet up`` and ``fleet status``: every target brought to the heads (a database each, one schema per tenant,
or the targets a control database lists), the ledger rows that say so, and a rerun that has nothing to do."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from hindsight_migrate.errors import ExitCode
from tests.conftest import assert_failure, flatten, invoke
from tests.harness import dbstate
from tests.harness.audit import audit_rows
from tests.harness.fleet import (
    Databases,
    Entry,
    assert_not_shown,
    by_name,
    control_rows,
    document,
    fleet,
    ledger,
    tool_rows_text,
    version,
    write,
    write_targets,
)
from tests.harness.hindsight_chain import (
    AFTER_BASELINE,
    AFTER_MERGE,
    BASELINE,
    BRANCH_POINT,
    FEEDBACK_BRANCH,
    HEAD,
    MERGE,
    SEARCH_BRANCH,
)
from tests.harness.projects import Rev, write_revision

SEVEN = {AFTER_BASELINE, BRANCH_POINT, FEEDBACK_BRANCH, SEARCH_BRANCH, MERGE, AFTER_MERGE, HEAD}


def test_up_brings_every_target_to_head_and_a_rerun_changes_nothing(
    tmp_path: Path, databases: Databases, hindsight_baseline: str, hindsight_ini: str
) -> None:
    names = {f"tenant-{k}": databases.create(f"up{k}", template=hindsight_baseline) for k in range(1, 5)}
    urls = {target: databases.sql_url(name) for target, name in names.items()}
    secret = databases.secret_of(names["tenant-1"])
    targets = write_targets(
        tmp_path / "fleet.toml",
        [Entry(target, databases.target_url(name, secret=target == "tenant-1")) for target, name in names.items()],
    )

    result = fleet(
        "up", "-c", hindsight_ini, "-t", str(targets), "--parallel", "2", "--yes", "--no-rehearsal", "--format", "json"
    )

    assert result.exit_code == ExitCode.OK, result.output
    assert_not_shown(secret, result.output)
    data = document(result, "fleet_up")
    outcomes = by_name(data)
    assert set(outcomes) == set(names)
    for outcome in outcomes.values():
        assert (outcome["state"], outcome["current"], outcome["error"]) == ("applied", [HEAD], None), outcome
        assert sorted(outcome["applied"]) == sorted(SEVEN), outcome
    assert sorted(o["stage"] for o in outcomes.values()) == ["canary", "wave", "wave", "wave"]
    assert data["stopped_by_budget"] is False and data["allowed_failures"] == 0
    for target, url in urls.items():
        assert version(url) == [HEAD], target
        assert {name: row[:4] for name, row in ledger(url).items()} == {
            target: ("applied", data["rollout"], HEAD, None)
        }
        assert audit_rows(url, "command, from_revisions, to_revisions, outcome") == [
            ("bootstrap", "base", BASELINE, "succeeded"),  # the template's
            ("up", BASELINE, HEAD, "succeeded"),
        ]
    assert_not_shown(secret, tool_rows_text(urls["tenant-1"]))

    def everything() -> dict[str, Any]:
        return {t: (dbstate.snapshot(u), ledger(u), audit_rows(u, "*")) for t, u in urls.items()}

    before = everything()
    again = fleet("up", "-c", hindsight_ini, "-t", str(targets), "--parallel", "2", "--yes", "--no-rehearsal")
    assert again.exit_code == ExitCode.OK, again.output
    assert "Nothing to do: every target is at the heads." in again.output
    assert "4 of 4 targets at the heads (0 migrated by this run), 0 failed, 0 skipped" in again.output
    assert everything() == before  # not even a ledger row touched

    status = fleet("status", "-c", hindsight_ini, "-t", str(targets), "--format", "json")
    assert status.exit_code == ExitCode.OK, status.output
    rows = by_name(document(status, "fleet_status"))
    assert {t: (r["state"], r["current"], r["pending"], r["error"]) for t, r in rows.items()} == {
        t: ("applied", [HEAD], [], None) for t in names
    }
    assert "***" in rows["tenant-1"]["url"]
    assert_not_shown(secret, status.output)


# Alembic's cookbook, "Rudimental Schema-Level Multi Tenancy for PostgreSQL Databases": the tenant's schema
# comes from -x tenant=SCHEMA, and each tenant has its own version table in its schema.
TENANT_ENV_PY = """\
from alembic import context
from sqlalchemy import engine_from_config, pool, text

config = context.config


def run_migrations_offline() -> None:
    tenant = context.get_x_argument(as_dictionary=True).get("tenant")
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True,
                      version_table_schema=tenant)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    current_tenant = context.get_x_argument(as_dictionary=True).get("tenant")
    connectable = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                     poolclass=pool.NullPool)
    with connectable.connect() as connection:
        connection.execute(text('set search_path to "%s"' % current_tenant))
        connection.commit()
        connection.dialect.default_schema_name = current_tenant
        context.configure(connection=connection, target_metadata=None, version_table_schema=current_tenant)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
"""
TENANT_REVISIONS = (
    Rev("7e4a00000001", (), "create widgets", 'op.execute("CREATE TABLE widgets (id serial PRIMARY KEY, name text)")'),
    Rev(
        "7e4a00000002",
        ("7e4a00000001",),
        "create gadgets",
        'op.execute("CREATE TABLE gadgets (id serial PRIMARY KEY, widget_id integer REFERENCES widgets (id))")',
    ),
)
TENANTS = ("s1", "s2", "s3")


def tenant_project(folder: Path) -> Path:
    versions = folder / "migrations" / "versions"
    versions.mkdir(parents=True)
    (folder / "migrations" / "env.py").write_text(TENANT_ENV_PY)
    for rev in TENANT_REVISIONS:
        write_revision(versions, rev)
    ini = folder / "alembic.ini"
    ini.write_text(
        textwrap.dedent(
            """\
            [alembic]
            script_location = %(here)s/migrations
            sqlalchemy.url = driver://user:pass@localhost/dbname
            """
        )
    )
    return ini


def test_schema_per_tenant_gives_each_schema_its_tables_and_its_version_table(
    tmp_path: Path, databases: Databases
) -> None:
    ini = str(tenant_project(tmp_path / "tenants"))
    name = databases.create("tenants")
    url = databases.sql_url(name)
    dbstate.execute(url, "; ".join(f"CREATE SCHEMA {tenant}" for tenant in TENANTS))
    targets = write_targets(
        tmp_path / "fleet.toml", schemas={"url": databases.target_url(name), "names": list(TENANTS)}
    )

    result = fleet("up", "-c", ini, "-t", str(targets), "--yes", "--no-rehearsal", "--format", "json")

    assert result.exit_code == ExitCode.OK, result.output
    outcomes = by_name(document(result, "fleet_up"))
    assert {t: (o["state"], o["current"], o["applied"]) for t, o in outcomes.items()} == {
        tenant: ("applied", ["7e4a00000002"], ["7e4a00000001", "7e4a00000002"]) for tenant in TENANTS
    }
    for tenant in TENANTS:
        assert dbstate.tables(url, tenant) == {"widgets", "gadgets", "alembic_version"}, tenant
        assert version(url, tenant) == ["7e4a00000002"], tenant
    assert dbstate.tables(url, "public") == set()
    assert {t: row[0] for t, row in ledger(url).items()} == {tenant: "applied" for tenant in TENANTS}

    # The same tenants read by a query on the database: all applied.
    query = "SELECT nspname FROM pg_namespace WHERE nspname ~ '^s[0-9]$' ORDER BY 1"
    write_targets(targets, schemas={"url": databases.target_url(name), "query": query})
    status = fleet("status", "-c", ini, "-t", str(targets), "--format", "json")
    assert status.exit_code == ExitCode.OK, status.output
    rows = by_name(document(status, "fleet_status"))
    assert {t: (r["state"], r["current"]) for t, r in rows.items()} == {
        tenant: ("applied", ["7e4a00000002"]) for tenant in TENANTS
    }


def test_targets_listed_by_a_control_database_query(
    tmp_path: Path, databases: Databases, hindsight_baseline: str, hindsight_ini: str
) -> None:
    control = databases.create("control")
    control_url = databases.sql_url(control)
    names = {f"acme-{k}": databases.create(f"ctl{k}", template=hindsight_baseline) for k in range(1, 4)}
    secret = databases.secret_of(names["acme-2"])
    dbstate.execute(control_url, "CREATE TABLE tenants (name text PRIMARY KEY, url text NOT NULL, active boolean)")
    for target, name in names.items():
        link = databases.target_url(name, secret=target == "acme-2")
        write(control_url, "INSERT INTO tenants VALUES (:name, :link, true)", name=target, link=link)
    write(control_url, "INSERT INTO tenants VALUES ('retired', 'postgresql://nowhere.invalid/x', false)")
    targets = write_targets(
        tmp_path / "fleet.toml",
        control={
            "url": databases.target_url(control),
            "query": "SELECT name, url FROM tenants WHERE active ORDER BY name",
        },
    )

    result = fleet("up", "-c", hindsight_ini, "-t", str(targets), "--yes", "--no-rehearsal", "--format", "json")

    assert result.exit_code == ExitCode.OK, result.output
    assert_not_shown(secret, result.output)
    data = document(result, "fleet_up")
    assert {t: (o["state"], o["current"]) for t, o in by_name(data).items()} == {
        target: ("applied", [HEAD]) for target in names
    }
    for name in names.values():
        assert version(databases.sql_url(name)) == [HEAD]
    assert control_rows(control_url) == [(data["rollout"], target, "applied", HEAD, None, None) for target in names]
    assert_not_shown(secret, tool_rows_text(control_url), tool_rows_text(databases.sql_url(names["acme-2"])))

    status = fleet("status", "-c", hindsight_ini, "-t", str(targets), "--format", "json")
    assert status.exit_code == ExitCode.OK, status.output
    assert {t: r["state"] for t, r in by_name(document(status, "fleet_status")).items()} == {
        target: "applied" for target in names
    }


def test_up_with_a_saved_plan_applies_only_what_was_reviewed(
    tmp_path: Path, databases: Databases, hindsight_baseline: str, hindsight_project: Path
) -> None:
    ini = str(hindsight_project / "alembic.ini")
    names = {t: databases.create(f"saved_{t}", template=hindsight_baseline) for t in ("a", "along", "off")}
    urls = {target: databases.sql_url(name) for target, name in names.items()}

    def move(target: str, *args: str) -> None:
        moved = invoke("-c", ini, "--url", urls[target], *args, "--yes", "--no-rehearsal")
        assert moved.exit_code == 0, moved.output

    move("off", "up", BRANCH_POINT)
    targets = write_targets(tmp_path / "fleet.toml", [Entry(t, databases.target_url(n)) for t, n in names.items()])
    reviewed = fleet("plan", "-c", ini, "-t", str(targets), "--no-rehearsal", "--plan-out", "reviewed.json")
    assert reviewed.exit_code == ExitCode.OK, reviewed.output

    # A revision file edited after the review: the saved plan is refused, nothing applied.
    head_file = next((hindsight_project / "migrations" / "versions").glob(f"*_{HEAD}_*.py"))
    original = head_file.read_text()
    head_file.write_text(original + "\n# edited after the review\n")
    before = {target: dbstate.snapshot(url) for target, url in urls.items()}
    refused = fleet("up", "-c", ini, "-t", str(targets), "--plan", "reviewed.json", "--yes")
    assert refused.exit_code == ExitCode.REFUSED, refused.output
    assert "The revisions changed since reviewed.json was reviewed" in " ".join(refused.output.split())
    assert {target: dbstate.snapshot(url) for target, url in urls.items()} == before

    # The file as reviewed again; meanwhile one target moved along the reviewed path (two of its revisions
    # applied, as by a run of this plan that stopped) and one moved off it (taken back below where it stood).
    head_file.write_text(original)
    move("along", "up", BRANCH_POINT)
    move("off", "down", "--to", AFTER_BASELINE)
    result = fleet("up", "-c", ini, "-t", str(targets), "--plan", "reviewed.json", "--yes", "--format", "json")

    assert result.exit_code == ExitCode.FAILED, result.output  # not every target is at the heads
    outcomes = by_name(document(result, "fleet_up"))
    assert (outcomes["a"]["state"], outcomes["a"]["current"]) == ("applied", [HEAD])
    assert (outcomes["off"]["state"], outcomes["off"]["current"]) == ("skipped", [AFTER_BASELINE])
    assert f"it was at {BRANCH_POINT}, it is at {AFTER_BASELINE}" in outcomes["off"]["error"]
    assert version(urls["a"]) == [HEAD] and version(urls["off"]) == [AFTER_BASELINE]
    # Moved along the reviewed path (as by a run of this plan that stopped): finished.
    assert (outcomes["along"]["state"], version(urls["along"])) == ("applied", [HEAD]), outcomes["along"]


def test_up_without_yes_and_without_a_terminal_stops_before_reading_anything(
    tmp_path: Path, databases: Databases, hindsight_baseline: str, hindsight_ini: str
) -> None:
    name = databases.create("no_terminal", template=hindsight_baseline)
    url = databases.sql_url(name)
    unreachable = Entry("unreachable", "postgresql://postgres@127.0.0.1:1/never")  # read, it would block the run
    targets = write_targets(tmp_path / "fleet.toml", [Entry("tenant", databases.target_url(name)), unreachable])
    before = dbstate.snapshot(url)

    result = fleet("up", "-c", hindsight_ini, "-t", str(targets))

    assert_failure(result, ExitCode.ABORTED, "Nothing was changed", "pass --yes")
    assert dbstate.snapshot(url) == before
    assert "--dry-run" not in result.output  # fleet up has no such option
    assert "review first with hindsight-migrate fleet plan" in flatten(result.output)
