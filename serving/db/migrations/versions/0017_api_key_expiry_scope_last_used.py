"""API keys: an expiry, a scope of modules, and the time of the latest call (``api_keys.expires_at``, ``modules``,
``last_used_at``).

A tenant-admin audit found keys living forever, every key of a tenant calling every module it holds, and no way to
tell a key still in use from a forgotten one. A key may now carry when it stops working, the modules it may call
(JSON text of their names, which SQLite and PostgreSQL both keep as text), and the time of its latest authenticated
call (each server process writes it at most once a minute, only ever moving it forward). All three are nullable:
keys made before keep working as they did (no expiry, every module) and show no last use until their next call.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_keys", sa.Column("modules", sa.Text, nullable=True))
    op.add_column("api_keys", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for column in ("last_used_at", "modules", "expires_at"):
        op.drop_column("api_keys", column)
