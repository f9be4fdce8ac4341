"""Alembic environment: SFAI runs migrations programmatically with a connection (serving.db.engine.migrate)."""

from alembic import context

from serving.db.tables import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - SFAI always passes a connection
    raise RuntimeError("run SFAI migrations through serving.db.migrate(engine)")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
