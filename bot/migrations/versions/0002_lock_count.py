"""verification_locks.lock_count: how many times a key was locked, so that each new lock lasts longer

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("verification_locks") as batch_op:
        batch_op.add_column(sa.Column("lock_count", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("verification_locks") as batch_op:
        batch_op.drop_column("lock_count")
