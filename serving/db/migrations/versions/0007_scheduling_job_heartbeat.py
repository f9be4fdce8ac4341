"""Background solves outlive the process that took them: ``scheduling_jobs.heartbeat_at``.

A job lived in the memory of the server process that accepted it: when that process stopped (a restart, a crash,
a deploy), its queued and running jobs stayed ``queued`` / ``running`` for good and the tenant had to notice and
resubmit. Each process now stamps its jobs every few seconds; a job whose stamp is stale is taken over by a live
process (one, by a conditional update) and solved again from its stored request.

Jobs from before this revision have no stamp: their age counts instead.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("scheduling_jobs", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("scheduling_jobs", "heartbeat_at")
