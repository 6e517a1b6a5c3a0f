"""Threads that expire: a TTL (strategy and minutes), its expiry, and a retention mark

`threads.ttl_strategy` (`delete` or `keep_latest`) and `ttl_minutes` are the thread's TTL;
`expires_at` is when the sweeper applies it. A new run on the thread (its activity) moves
`expires_at` to `now() + ttl_minutes` and marks the thread `retention_due`: the sweeper
then trims its checkpoints to the last N kept (`CHECKPOINT_KEEP_LAST`). Both are set by a
trigger on `runs`, so every path that creates a run (the SQL functions included) counts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("threads", sa.Column("ttl_strategy", sa.Text(), nullable=True))
    op.add_column("threads", sa.Column("ttl_minutes", sa.Float(), nullable=True))
    op.add_column("threads", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "threads",
        sa.Column("retention_due", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.create_check_constraint(
        "ttl",
        "threads",
        "(ttl_strategy IS NULL AND ttl_minutes IS NULL) OR "
        "(ttl_strategy IN ('delete', 'keep_latest') AND ttl_minutes > 0)",
    )
    # Both sweeps read only the rows they act on: cheap when nothing is due.
    op.create_index(
        "ix_threads_expires_at",
        "threads",
        ["expires_at"],
        postgresql_where=sa.text("expires_at IS NOT NULL"),
    )
    op.create_index(
        "ix_threads_retention_due",
        "threads",
        ["updated_at"],
        postgresql_where=sa.text("retention_due"),
    )
    op.execute(
        """
        CREATE FUNCTION trellis_thread_activity() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE threads SET
                   expires_at = CASE WHEN ttl_minutes IS NULL THEN NULL
                                ELSE now() + make_interval(secs => ttl_minutes * 60) END,
                   retention_due = true
             WHERE thread_id = NEW.thread_id;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER trellis_thread_activity AFTER INSERT ON runs "
        "FOR EACH ROW EXECUTE FUNCTION trellis_thread_activity()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER trellis_thread_activity ON runs")
    op.execute("DROP FUNCTION trellis_thread_activity()")
    op.drop_index("ix_threads_retention_due", table_name="threads")
    op.drop_index("ix_threads_expires_at", table_name="threads")
    op.drop_constraint("ttl", "threads", type_="check")
    op.drop_column("threads", "retention_due")
    op.drop_column("threads", "expires_at")
    op.drop_column("threads", "ttl_minutes")
    op.drop_column("threads", "ttl_strategy")
