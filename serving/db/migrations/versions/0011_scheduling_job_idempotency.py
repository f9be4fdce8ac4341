"""A background solve's idempotency key: ``scheduling_jobs.idempotency_key`` and ``request_hash``.

An MES that sent ``POST /v1/scheduling/jobs`` and timed out before the answer could not tell whether the job was
made: a retry made a second job, which ran the same solve again and took a second of the tenant's places in the
queue. A call with an ``Idempotency-Key`` header now makes at most one job per key and tenant (for 24 hours): a
retry gets that job back, and the same key with another request is refused. The request's hash tells the two apart.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scheduling_jobs") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(100), nullable=True))
        batch.add_column(sa.Column("request_hash", sa.String(64), nullable=True))
        batch.create_index("ix_scheduling_jobs_tenant_idempotency", ["tenant_id", "idempotency_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("scheduling_jobs") as batch:
        batch.drop_index("ix_scheduling_jobs_tenant_idempotency")
        batch.drop_column("request_hash")
        batch.drop_column("idempotency_key")
