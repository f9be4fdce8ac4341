"""A background solve's owner: ``scheduling_jobs.owner``, the process that holds the job now.

Migration 0007 let a live process take over a job whose stamp went stale. A process that had only stalled (a long
pause, a suspended container) then still finished the job it had started and wrote its answer over the new one's,
and its late ``running`` could turn a finished job back into a running one. Each process now writes and stamps a
job only while it owns it; a takeover changes the owner, so the stalled process's writes match no row.

Jobs from before this revision have no owner; whoever takes one over owns it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("scheduling_jobs", sa.Column("owner", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("scheduling_jobs", "owner")
