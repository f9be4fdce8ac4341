"""Plant calendars: ``plant_calendar_days``, each tenant's own days off and working days.

The energy forecast read Korea's public calendar only: a plant's summer shutdown week was forecast as working days
(and fed the working-day profile of the weeks after it), a working Saturday as a Saturday, a public holiday worked
through as a holiday. A tenant now keeps its own dates (``PUT /v1/energy/calendar``): ``day_off`` dates are
forecast as holidays, ``working`` dates as working days. One row per tenant and date, in the database every API
process shares.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plant_calendar_days",
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("note", sa.String(200), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("plant_calendar_days")
