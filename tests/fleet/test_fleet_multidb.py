"""An ``alembic init -t multidb`` project (several engines in one env.py) runs as a small fleet of its databases.

up and down refuse such a project (one run of its env.py migrates every database it lists); fleet runs it as
one target per database, env.py told ``databases = ENGINE`` alone, each database reviewed and applied on its own.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from hindsight_migrate.errors import ExitCode
from tests.harness.dbstate import query
from tests.harness.fleet import Databases, by_name, document, fleet, version
from tests.harness.templates import R3, init_project


def test_a_multidb_project_is_a_fleet_of_the_databases_its_ini_lists(tmp_path: Path, databases: Databases) -> None:
    ini = init_project(tmp_path / "project", "multidb")  # R1..R3 operate on engine1; engine2's functions pass
    urls = {engine: databases.sql_url(databases.create(engine)) for engine in ("engine1", "engine2")}
    text = ini.read_text()
    for placeholder, engine in (("dbname", "engine1"), ("dbname2", "engine2")):
        line = f"sqlalchemy.url = driver://user:pass@localhost/{placeholder}\n"
        url = make_url(urls[engine]).render_as_string(hide_password=False).replace("%", "%%")
        text = text.replace(line, f"sqlalchemy.url = {url}\n")
    ini.write_text(text)

    plan = fleet("plan", "-c", str(ini), "--no-rehearsal", "--format", "json")
    assert plan.exit_code == ExitCode.OK, plan.output
    reviewed = document(plan, "fleet_plan")
    assert sorted(by_name(reviewed)) == ["engine1", "engine2"]
    # One revision runs different SQL on each database: both are shown, each under its name.
    first = reviewed["revisions"][0]["sql"]
    assert "-- on engine1" in first and "-- on engine2" in first and "CREATE TABLE widgets" in first
    assert not any(version(url) for url in urls.values()), "the plan changed nothing"

    result = fleet("up", "-c", str(ini), "--yes", "--no-rehearsal", "--format", "json")

    assert result.exit_code == ExitCode.OK, result.output
    outcomes = by_name(document(result, "fleet_up"))
    assert {name: (o["state"], o["current"]) for name, o in outcomes.items()} == {
        "engine1": ("applied", [R3]),
        "engine2": ("applied", [R3]),
    }
    # Each database got its own engine's operations, and its own version table at the head.
    assert version(urls["engine1"]) == [R3] and version(urls["engine2"]) == [R3]
    assert _tables(urls["engine1"]) >= {"widgets", "gadgets"}
    assert not _tables(urls["engine2"]) & {"widgets", "gadgets"}


def _tables(url: str) -> set[str]:
    return {str(row[0]) for row in query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
