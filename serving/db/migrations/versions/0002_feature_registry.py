"""Feature store registry: declared feature views per tenant, with versions, and materialization state.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feature_views",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", "version", name="uq_feature_views_version"),
    )
    op.create_index("ix_feature_views_tenant_name", "feature_views", ["tenant_id", "name"])
    op.create_table(
        "feature_view_state",
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("materialized_until", TS, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("feature_view_state")
    op.drop_index("ix_feature_views_tenant_name", "feature_views")
    op.drop_table("feature_views")
