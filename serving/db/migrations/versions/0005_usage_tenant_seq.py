"""Usage records numbered per tenant: ``usage_log.tenant_seq`` and ``usage_tenant_heads``.

A tenant's usage API used to show each record's place in the whole log (``seq``), so the gaps between two of
its own calls told it how many calls every other tenant had made. Each record now also carries its number in
its tenant's own log (1, 2, 3, ...), which is what tenants see; ``seq`` stays the chain's order, for operators.
``usage_tenant_heads`` keeps each tenant's last number, so the numbering goes on after a retention purge.

Existing rows are numbered in log order. The append-only guard is lifted for that one update and put back.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

RETENTION_DAYS = 1096  # as in 0001: rows younger than this are protected by the database itself


def _guard_sqlite() -> None:
    op.execute(
        "CREATE TRIGGER usage_log_no_update BEFORE UPDATE ON usage_log "
        "BEGIN SELECT RAISE(ABORT, 'usage_log is append-only'); END"
    )
    op.execute(
        "CREATE TRIGGER usage_log_retention BEFORE DELETE ON usage_log "
        f"WHEN OLD.ts > datetime('now', '-{RETENTION_DAYS} days') "
        "BEGIN SELECT RAISE(ABORT, 'usage_log rows are kept three years'); END"
    )


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.add_column("usage_log", sa.Column("tenant_seq", sa.BigInteger, nullable=False, server_default="0"))
    if sqlite:
        op.execute("DROP TRIGGER IF EXISTS usage_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS usage_log_retention")
    else:
        op.execute("ALTER TABLE usage_log DISABLE TRIGGER usage_log_guard")
    op.execute(
        "UPDATE usage_log SET tenant_seq = numbered.n FROM "
        "(SELECT seq, row_number() OVER (PARTITION BY tenant_id ORDER BY seq) AS n FROM usage_log) AS numbered "
        "WHERE usage_log.seq = numbered.seq"
    )
    if sqlite:
        _guard_sqlite()
    else:
        op.execute("ALTER TABLE usage_log ENABLE TRIGGER usage_log_guard")
    op.create_index("ix_usage_log_tenant_seq", "usage_log", ["tenant_id", "tenant_seq"], unique=True)
    op.create_table(
        "usage_tenant_heads",
        sa.Column("tenant_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )
    op.execute(
        "INSERT INTO usage_tenant_heads (tenant_id, last_seq) "
        "SELECT tenant_id, max(tenant_seq) FROM usage_log GROUP BY tenant_id"
    )


def downgrade() -> None:
    op.drop_table("usage_tenant_heads")
    op.drop_index("ix_usage_log_tenant_seq", "usage_log")
    op.drop_column("usage_log", "tenant_seq")
