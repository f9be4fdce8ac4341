"""Ingest calls with an ``Idempotency-Key``: ``ingest_requests``.

An MES that sent a batch, timed out and sent it again after another batch had landed in the same day's data stored
its rows a second time, and a retry that came after a correction of the same readings undid the correction: with
no key, a repeated batch is indistinguishable from a value deliberately set back (MES integrator's audit). A call
with an ``Idempotency-Key`` header now stores its rows once per key and tenant (for 24 hours): a retry gets the
first call's answer and writes nothing, and the same key with another batch is refused.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_requests",
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("idempotency_key", sa.String(100), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ingest_requests_tenant_created", "ingest_requests", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_ingest_requests_tenant_created", "ingest_requests")
    op.drop_table("ingest_requests")
