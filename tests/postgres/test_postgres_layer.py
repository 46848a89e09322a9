"""The PostgreSQL layer's promises, checked on the server: read-only work cannot write."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hindsight_migrate.config import DatabaseSource
from hindsight_migrate.postgres.database import open_database
from tests.harness import dbstate


def test_a_read_only_connection_is_refused_writes_by_the_server_in_every_transaction(database_url: str) -> None:
    database = open_database(DatabaseSource(url=database_url, origin="test"))
    try:
        with database.read_only() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
            with pytest.raises(DBAPIError, match="read-only transaction"):
                connection.execute(text("CREATE TABLE must_not_exist (id int)"))
            connection.rollback()
            # A later transaction on the same connection is read-only too.
            with pytest.raises(DBAPIError, match="read-only transaction"):
                connection.execute(text("CREATE TABLE must_not_exist (id int)"))
            connection.rollback()
    finally:
        database.dispose()
    assert "must_not_exist" not in dbstate.tables(database_url)
