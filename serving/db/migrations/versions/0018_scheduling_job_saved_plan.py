"""A background job's best plan survives a graceful stop: ``scheduling_jobs.saved_plan``.

A server stopped gracefully (SIGTERM: a deploy, a scale-in) stopped its running solves and handed their jobs back;
the process that took a job next solved it again from scratch with its whole time limit, so a planner whose
10-minute solve met a deploy at minute 8 waited 18 minutes, and the plan found by minute 8 was lost. The stopped
solve's best plan and the time it had spent are now kept on the job (JSON text, nullable: jobs from before, and
jobs stopped before they had a plan, have none and are solved from scratch as before), and the next process goes
on from that plan for the time left.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("scheduling_jobs", sa.Column("saved_plan", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("scheduling_jobs", "saved_plan")
