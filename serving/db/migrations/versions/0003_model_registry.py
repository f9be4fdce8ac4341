"""Model registry: versions of each tenant's models, their aliases (champion, challenger) and alias history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("module", sa.String(32), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("mlflow_run_id", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", "version", name="uq_model_versions_version"),
    )
    op.create_table(
        "model_alias_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),  # null: alias removed
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_model_alias_events_lookup", "model_alias_events", ["tenant_id", "name", "alias"])


def downgrade() -> None:
    op.drop_index("ix_model_alias_events_lookup", "model_alias_events")
    op.drop_table("model_alias_events")
    op.drop_table("model_versions")
