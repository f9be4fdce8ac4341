"""A deployment's own identity (``usage_chain.deployment_id``), and no TRUNCATE of the usage log on PostgreSQL.

Two SFAI deployments pointed at one Redis (``SFAI_RATE_LIMIT_REDIS``) counted their tenants' quotas and rate limits in
the same keys, named by tenant id: deployment B's tenant 1 was refused as over the quota deployment A's tenant 1 had
used, and B's calls raised A's count (operator's audit). Each database now draws a random id once, here, and the
Redis counters carry it, so deployments sharing a Redis keep apart; the processes of one deployment, reading one
database, share their counters as before (a counter under the new name starts from the usage log, as a new month's
does).

PostgreSQL's row triggers refuse UPDATE and DELETE of usage records younger than three years, but ``TRUNCATE
usage_log`` emptied the log (``sfai usage verify`` found it, afterwards): a statement trigger now refuses it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_chain") as batch:
        batch.add_column(sa.Column("deployment_id", sa.String(32), nullable=True))
    op.get_bind().execute(sa.text("UPDATE usage_chain SET deployment_id = :id"), {"id": uuid.uuid4().hex})
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION sfai_usage_log_no_truncate() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'usage_log rows are kept three years: TRUNCATE is refused';
            END $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER usage_log_no_truncate BEFORE TRUNCATE ON usage_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION sfai_usage_log_no_truncate()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS usage_log_no_truncate ON usage_log")
        op.execute("DROP FUNCTION IF EXISTS sfai_usage_log_no_truncate()")
    with op.batch_alter_table("usage_chain") as batch:
        batch.drop_column("deployment_id")
