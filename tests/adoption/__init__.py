"""Any Alembic project as it comes: stock templates against raw Alembic, configuration layouts, pytest-alembic."""
