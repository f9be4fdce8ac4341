"""Repeated refusals in one usage record: ``usage_log.calls``.

Every call refused with 403 or 429 had been a record of its own, kept three years: one client retrying at
~475 refusals a second wrote ~40 M rows a day (capacity audit). A serving process now writes the first refusal of
a kind (the same key, module, method, endpoint and status) at once, as before, and the refusals of that kind in
the next 10 seconds as one record whose ``calls`` says how many it stands for. Every other record stands for one call
(``calls`` 1). The chain hashes ``calls`` only where it is not 1, so the existing records verify as they are.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("usage_log", sa.Column("calls", sa.Integer, nullable=False, server_default="1"))


def downgrade() -> None:
    op.drop_column("usage_log", "calls")  # not a batch copy: that would drop the table's append-only triggers
