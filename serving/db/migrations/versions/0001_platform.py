"""Platform schema: tenants, module catalogue, subscriptions, API keys, append-only usage log.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MODULES = [
    ("quality", "Defect prediction from process measurements"),
    ("maintenance", "Machine failure risk and remaining useful life"),
    ("energy", "Probabilistic energy forecasts and the carbon they imply"),
    ("scheduling", "Production plans optimised with OR-Tools CP-SAT"),
]
GENESIS = "0" * 64
# Rows younger than this are protected by the database itself (three years and a day).
RETENTION_DAYS = 1096

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("ksic_code", sa.String(3), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    modules = op.create_table(
        "modules",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("description", sa.String(300), nullable=False),
    )
    op.bulk_insert(modules, [{"name": n, "description": d} for n, d in MODULES])
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("module", sa.String(32), sa.ForeignKey("modules.name"), nullable=False),
        sa.Column("plan", sa.String(32), nullable=False),
        sa.Column("request_quota", sa.BigInteger, nullable=True),
        sa.Column("starts_at", TS, nullable=False),
        sa.Column("ends_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False, unique=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False, index=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_table(
        "usage_log",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("ts", TS, nullable=False, index=True),
        sa.Column("tenant_id", sa.Integer, nullable=False, index=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("module", sa.String(32), nullable=True),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("endpoint", sa.String(300), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("latency_us", sa.BigInteger, nullable=False),
        sa.Column("model_version", sa.String(100), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    chain = op.create_table(
        "usage_chain",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("anchor_seq", sa.BigInteger, nullable=False),
        sa.Column("anchor_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(chain, [{"id": 1, "last_seq": 0, "last_hash": GENESIS, "anchor_seq": 0, "anchor_hash": GENESIS}])

    # The database itself refuses edits of the usage log and deletes of rows younger than three years.
    # (Someone who can drop the triggers can still tamper; the hash chain makes that visible.)
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER usage_log_no_update BEFORE UPDATE ON usage_log "
            "BEGIN SELECT RAISE(ABORT, 'usage_log is append-only'); END"
        )
        op.execute(
            "CREATE TRIGGER usage_log_retention BEFORE DELETE ON usage_log "
            f"WHEN OLD.ts > datetime('now', '-{RETENTION_DAYS} days') "
            "BEGIN SELECT RAISE(ABORT, 'usage_log rows are kept three years'); END"
        )
    else:
        op.execute(
            f"""
            CREATE FUNCTION sfai_usage_log_guard() RETURNS trigger AS $$
            BEGIN
                IF TG_OP = 'UPDATE' THEN
                    RAISE EXCEPTION 'usage_log is append-only';
                END IF;
                IF OLD.ts > now() - interval '{RETENTION_DAYS} days' THEN
                    RAISE EXCEPTION 'usage_log rows are kept three years';
                END IF;
                RETURN OLD;
            END $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER usage_log_guard BEFORE UPDATE OR DELETE ON usage_log "
            "FOR EACH ROW EXECUTE FUNCTION sfai_usage_log_guard()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP TRIGGER IF EXISTS usage_log_guard ON usage_log")
        op.execute("DROP FUNCTION IF EXISTS sfai_usage_log_guard()")
    for table in ("usage_chain", "usage_log", "api_keys", "subscriptions", "modules", "tenants"):
        op.drop_table(table)
