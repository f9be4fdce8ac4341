"""A keyed usage chain: ``usage_chain.keyed_from`` and ``keyed_mark``.

Each usage record's hash was plain SHA-256 over the previous hash and the record: someone who could write the
database (and drop its append-only triggers) could rewrite the records and recompute every hash, and
``sfai usage verify`` found nothing. Records are now hashed with HMAC-SHA256 under a key derived from
``SFAI_SECRET_KEY``, which the database does not hold.

Records already written keep their plain hashes: ``keyed_from`` is the first row that is keyed (the row after
the last one here; 1 on a new database). The first keyed record signs that start (``keyed_mark``), so it cannot
be moved past rows to rewrite them as plain without the key.

A retention purge now signs the anchor it leaves (``anchor_ts``, the last purged row's time, and ``anchor_mark``):
before, deleting the first rows of the log, young or old, and pointing the anchor at the last one deleted passed
``verify`` as a purge. An anchor left before this revision is unsigned; it can only lie among the plain rows.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("usage_chain") as batch:
        batch.add_column(sa.Column("keyed_from", sa.BigInteger, nullable=False, server_default="1"))
        batch.add_column(sa.Column("keyed_mark", sa.String(64), nullable=True))
        batch.add_column(sa.Column("anchor_ts", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("anchor_mark", sa.String(64), nullable=True))
    op.execute("UPDATE usage_chain SET keyed_from = last_seq + 1")


def downgrade() -> None:
    with op.batch_alter_table("usage_chain") as batch:
        batch.drop_column("anchor_mark")
        batch.drop_column("anchor_ts")
        batch.drop_column("keyed_mark")
        batch.drop_column("keyed_from")
