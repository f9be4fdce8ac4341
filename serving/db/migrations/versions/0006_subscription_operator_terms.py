"""Subscriptions the operator manages: ``subscriptions.operator_managed``.

A tenant admin may subscribe its tenant and change plans itself (``POST /v1/subscriptions``). Terms the SFAI
operator set (a custom quota, an end date) or an end the operator gave must not be undone that way: a tenant
admin re-subscribing used to replace a dated trial with an open-ended one, or reopen a subscription the
operator had ended. A row the operator set such terms on, or ended, is marked; while a module's latest row is
marked, only the operator (``sfai tenant subscribe``) changes it.

Existing rows are marked where their terms differ from the plan's (a quota other than the plan's, or an end date
still to come); an end that is already past cannot be told from a tenant's own unsubscribe, so it is not marked.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# the plans' quotas when this revision was written (serving/tenancy.py PLANS)
PLAN_QUOTAS = {"trial": 10_000, "standard": 1_000_000, "enterprise": None}


def upgrade() -> None:
    op.add_column(
        "subscriptions", sa.Column("operator_managed", sa.Boolean, nullable=False, server_default=sa.false())
    )
    subs = sa.table(
        "subscriptions",
        sa.column("plan", sa.String),
        sa.column("request_quota", sa.BigInteger),
        sa.column("ends_at", sa.DateTime(timezone=True)),
        sa.column("operator_managed", sa.Boolean),
    )
    custom = [
        sa.and_(subs.c.plan == plan, subs.c.request_quota.is_not(None) if quota is None
                else sa.or_(subs.c.request_quota.is_(None), subs.c.request_quota != quota))
        for plan, quota in PLAN_QUOTAS.items()
    ]
    op.execute(
        subs.update()
        .where(sa.or_(*custom, subs.c.ends_at > sa.func.current_timestamp()))
        .values(operator_managed=True)
    )


def downgrade() -> None:
    op.drop_column("subscriptions", "operator_managed")
