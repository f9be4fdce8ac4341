"""The Alembic revisions and the table mappings describe the same schema, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from serving.db import Database
from serving.db.tables import Base


def test_migrated_schema_matches_the_mappings(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    tables = set(inspect(db.engine).get_table_names())
    assert {"tenants", "modules", "subscriptions", "api_keys", "usage_log", "usage_chain", "alembic_version"} <= tables


def test_migrations_are_idempotent_on_start(settings, db):
    again = Database(settings.resolved_database_url)  # what every process start does
    with again.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0004"
    again.dispose()
