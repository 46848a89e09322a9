"""A peer's test suite: pytest-alembic's built-in tests, run on Hindsight's chain on real PostgreSQL.

pytest-alembic's own collector cannot bind to this suite on pytest 9 (it fails while naming its
node), so its built-in tests are imported here and collected as ours, with its fixtures. The
database gets V1 first, without a stamp: the chain starts at an empty baseline that stands for V1,
so "upgrade from base" means V1 plus every revision, as in a real deployment.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pytest_alembic.tests import (
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from tests.conftest import HINDSIGHT_INI

__all__ = [
    "test_model_definitions_match_ddl",
    "test_single_head_revision",
    "test_up_down_consistency",
    "test_upgrade",
]

V1 = HINDSIGHT_INI.parent / "infra" / "migrations" / "V1__initial_schema.sql"


@pytest.fixture
def alembic_config() -> dict[str, Any]:
    return {"file": str(HINDSIGHT_INI)}


@pytest.fixture
def alembic_engine(database_url: str) -> Iterator[Engine]:
    """The test's own database, holding the V1 schema (what bootstrap runs) and no version yet."""
    engine = create_engine(database_url, poolclass=NullPool)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(V1.read_text())  # no parameters: psycopg sends the file as one script
        cursor.close()
        raw.commit()
    finally:
        raw.close()
    yield engine
    engine.dispose()
