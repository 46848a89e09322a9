"""Plans of projects whose env.py picks the schema (issue 22, item 5): snapshots read the same whatever
search_path the session has, and an env.py that migrates many tenant schemas gets one grouped plan."""

from __future__ import annotations

import json
from pathlib import Path

from hindsight_migrate.render.wording import diff_line
from hindsight_migrate.schema import Change, SchemaChange, group_across_schemas
from tests.conftest import assert_failure, flatten, invoke
from tests.harness.dbstate import execute, query
from tests.harness.templates import S1, S2, raw_alembic, schema_of, schema_project

TENANTS = ("t1", "t2", "t3")


def test_a_named_schema_through_search_path_shows_only_what_the_revision_does(
    tmp_path: Path, database_url: str
) -> None:
    execute(database_url, "CREATE SCHEMA app")
    ini = str(schema_project(tmp_path / "project", schema="app"))
    assert invoke("-c", ini, "--url", database_url, "up", S1, "--yes").exit_code == 0

    up = invoke("-c", ini, "--url", database_url, "up", "--dry-run")
    assert up.exit_code == 0, up.output
    flat = flatten(up.output)
    assert "0 to change" in flat, up.output
    assert "app.gadgets" in flat, up.output
    assert "app.widgets" not in flat, up.output  # its serial default and key are as they were
    data = json.loads(invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--format", "json").stdout)["plan"][
        "rehearsal"
    ]
    changes = [(c["kind"], c["name"], c["change"]) for c in data["diff"]]
    assert all(name.startswith("app.gadgets") for _, name, _ in changes), changes
    assert ("table", "app.gadgets", "added") in changes, changes
    assert all(change == "added" for _, _, change in changes), changes

    assert invoke("-c", ini, "--url", database_url, "up", "--yes").exit_code == 0
    down = invoke("-c", ini, "--url", database_url, "down", "--to", S1, "--dry-run")
    assert down.exit_code == 0, down.output
    flat = flatten(down.output)
    assert "0 to change" in flat, down.output
    assert "app.widgets" not in flat, down.output
    data = json.loads(
        invoke("-c", ini, "--url", database_url, "down", "--to", S1, "--dry-run", "--format", "json").stdout
    )["plan"]["rehearsal"]
    changes = [(c["kind"], c["name"], c["change"]) for c in data["diff"]]
    assert ("table", "app.gadgets", "removed") in changes, changes
    assert all(change == "removed" and name.startswith("app.gadgets") for _, name, change in changes), changes
    assert query(database_url, "SELECT version_num FROM app.alembic_version") == [(S2,)]


def test_tenant_schemas_get_one_grouped_plan_and_the_schema_raw_alembic_builds(
    tmp_path: Path, database_url: str, make_database: object
) -> None:
    for tenant in TENANTS:
        execute(database_url, f"CREATE SCHEMA {tenant}")
    project = tmp_path / "project"
    ini = str(schema_project(project, tenants=TENANTS))
    first = invoke("-c", ini, "--url", database_url, "up", S1, "--yes")
    assert first.exit_code == 0, first.output

    plan = invoke("-c", ini, "--url", database_url, "up", "--dry-run")
    assert plan.exit_code == 0, plan.output
    flat = flatten(plan.output)
    assert "in 3 schemas" in flat, plan.output
    assert "0 to change" in flat, plan.output
    assert f"{S1[:8]} → {S2[:8]} in 3 schemas" in flat or f"{S1} → {S2} in 3 schemas" in flat, plan.output
    assert flat.count("t2.gadgets") == 0, plan.output  # grouped: *.gadgets, not once per tenant
    assert "t1, t2, t3" in flat, plan.output
    document = json.loads(invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--format", "json").stdout)
    assert document["plan"]["schemas"] == list(TENANTS) and document["summary"]["schemas"] == list(TENANTS)
    diff = document["plan"]["rehearsal"]["diff"]
    added = {c["name"] for c in diff if c["kind"] == "table"}
    assert added == {f"{tenant}.gadgets" for tenant in TENANTS}, diff  # JSON lists each schema's change
    assert not any(c["name"].startswith("*") for c in diff), diff
    markdown = invoke("-c", ini, "--url", database_url, "up", "--dry-run", "--format", "markdown").stdout
    assert "in 3 schemas" in markdown and "*.gadgets" in markdown and "t2.gadgets" not in markdown, markdown

    done = invoke("-c", ini, "--url", database_url, "up", "--yes")
    assert done.exit_code == 0, done.output
    for tenant in TENANTS:
        assert query(database_url, f"SELECT version_num FROM {tenant}.alembic_version") == [(S2,)]

    other = make_database("raw")  # type: ignore[operator]
    for tenant in TENANTS:
        execute(other, f"CREATE SCHEMA {tenant}")
    raw_alembic(project, [], other, "upgrade", "head")
    ours, theirs = schema_of(database_url), schema_of(other)
    for tenant in TENANTS:
        assert query(other, f"SELECT version_num FROM {tenant}.alembic_version") == [(S2,)]
    assert ours == theirs

    # Tenants left at different revisions cannot be one plan: refused, naming each version table.
    execute(database_url, f"UPDATE t2.alembic_version SET version_num = '{S1}'")
    split = invoke("-c", ini, "--url", database_url, "up", "--dry-run")
    assert_failure(split, 6, "env.py migrates 3 schemas", "not at the same revisions", f"t2.alembic_version: {S1}")
    assert schema_of(database_url)["tables"] == ours["tables"]


def test_grouping_across_schemas_keeps_what_differs_and_what_is_outside_them() -> None:
    """Pure: alike changes (the schema's own name in their shapes too) become one line; a change in one
    schema only, one whose shape differs, and one outside the tenants stay as they are."""
    fk = "FOREIGN KEY (widget_id) REFERENCES {}.widgets(id)"
    changes = (
        *(
            SchemaChange("constraint", f"{t}.gadgets.gadgets_widget_id_fkey", Change.ADDED, None, fk.format(t))
            for t in TENANTS
        ),
        SchemaChange("column", "t1.widgets.color", Change.CHANGED, "text", "integer"),
        SchemaChange("column", "t2.widgets.color", Change.CHANGED, "text", "bigint"),
        SchemaChange("table", "t3.extra", Change.ADDED, None, "id integer"),
        SchemaChange("table", "public.audit", Change.ADDED, None, "id integer"),
    )
    grouped = group_across_schemas(changes, TENANTS)
    assert [diff_line(c) for c in grouped] == [
        "constraint *.gadgets.gadgets_widget_id_fkey (in 3 schemas: t1, t2, t3)",
        "column t1.widgets.color: text → integer",
        "column t2.widgets.color: text → bigint",
        "table t3.extra",
        "table public.audit",
    ]
    assert grouped[0].after == "FOREIGN KEY (widget_id) REFERENCES *.widgets(id)"
    assert group_across_schemas(changes, ("t1",)) == changes  # one version table: nothing to group
