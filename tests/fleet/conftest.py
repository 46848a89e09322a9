"""The fleet tests' databases: one template per session at Hindsight's baseline and one at the fault chain's,
each test's targets copied from them (``CREATE DATABASE ... TEMPLATE``) and dropped after the test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.conftest import HINDSIGHT_INI, REPO, bootstrapped
from tests.harness.fleet import Databases, fleet_chain


@pytest.fixture
def databases(admin_engine: Engine, server_url: str) -> Iterator[Databases]:
    """This test's databases, dropped when it ends."""
    made = Databases(admin_engine, server_url)
    yield made
    made.drop_all()


@pytest.fixture(scope="session")
def hindsight_baseline(
    admin_engine: Engine, server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database at Hindsight's baseline (V1 bootstrapped, 7 revisions pending): the template of targets."""
    project = tmp_path_factory.mktemp("fleet-template-hindsight")
    shutil.copy2(HINDSIGHT_INI, project / "alembic.ini")
    shutil.copytree(REPO / "migrations", project / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "infra", project / "infra")
    templates = Databases(admin_engine, server_url)
    name = templates.create("tpl_hindsight")
    bootstrapped(project / "alembic.ini", templates.sql_url(name))
    yield name
    templates.drop_all()


@pytest.fixture(scope="session")
def chain_base(admin_engine: Engine, server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database at the fault chain's base (tests.harness.fleet.fleet_chain, bootstrapped): a template."""
    ini = fleet_chain(tmp_path_factory.mktemp("fleet-template-chain") / "p")
    templates = Databases(admin_engine, server_url)
    name = templates.create("tpl_chain")
    bootstrapped(ini, templates.sql_url(name))
    yield name
    templates.drop_all()


@pytest.fixture
def hindsight_ini(hindsight_project: Path) -> str:
    """The -c argument of this test's copy of Hindsight's project."""
    return str(hindsight_project / "alembic.ini")
