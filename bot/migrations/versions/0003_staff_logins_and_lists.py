"""staff console: login throttles instead of account locks, audited searches, unanswered questions grouped when written

- login_throttles: failed logins per client address and per username from that address (no account lock any more:
  staff_users.locked_until goes, staff_users.failed_logins stays as a count shown to admins);
- audit_log.searched: what a staff member typed into the household search;
- unanswered.group_id and .words: the group a question joined when it was written. Rows from before this revision
  keep group_id NULL; the staff console groups them the first time it lists them (bot/tickets.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("staff_users") as batch_op:
        batch_op.drop_column("locked_until")
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.add_column(sa.Column("searched", sa.String(length=64), nullable=False, server_default=""))
    with op.batch_alter_table("unanswered") as batch_op:
        batch_op.add_column(sa.Column("group_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("words", sa.Text(), nullable=False, server_default=""))
        batch_op.create_index("ix_unanswered_handled_group_id", ["handled", "group_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("unanswered") as batch_op:
        batch_op.drop_index("ix_unanswered_handled_group_id")
        batch_op.drop_column("words")
        batch_op.drop_column("group_id")
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.drop_column("searched")
    with op.batch_alter_table("staff_users") as batch_op:
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(), nullable=True))
    op.drop_table("login_throttles")
