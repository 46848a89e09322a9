"""hindsight-migrate: review-before-apply migrations for PostgreSQL, driving Alembic."""

__version__ = "0.1.0"
