"""Runs and threads refer to the state instead of copying it

A run keeps a reference to its final checkpoint (`runs.checkpoint_id`, `checkpoint_ns`);
`runs.output` now holds only `__error__` or `__interrupt__` (rows written before keep their
full values, and are answered from them). A thread keeps a bounded copy of its values for
search: top-level keys too large for it are listed in `threads.values_omitted` and read from
the latest checkpoint. `trellis_finish_run` takes both, and rewrites a thread's values only
when they changed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_SIGNATURE = (
    "trellis_finish_run(uuid, uuid, text, integer, text, jsonb, jsonb, "
    "text, boolean, jsonb, jsonb, boolean)"
)
_NEW_SIGNATURE = (
    "trellis_finish_run(uuid, uuid, text, integer, text, jsonb, jsonb, text, "
    "text, boolean, jsonb, text[], jsonb, boolean)"
)


def upgrade() -> None:
    op.add_column("runs", sa.Column("checkpoint_id", sa.Text(), nullable=True))
    op.add_column(
        "runs",
        sa.Column("checkpoint_ns", sa.Text(), server_default=sa.text("''"), nullable=False),
    )
    op.add_column(
        "threads",
        sa.Column(
            "values_omitted",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'::text[]"),
            nullable=False,
        ),
    )
    op.execute(f"DROP FUNCTION {_OLD_SIGNATURE}")
    # As in 0004, plus the run's checkpoint reference and the thread's omitted keys. The
    # thread's values are assigned only when they differ: an unchanged (TOASTed) value
    # keeps its storage instead of being written again.
    op.execute(
        """
        CREATE FUNCTION trellis_finish_run(
            p_run uuid, p_thread uuid, p_worker text, p_epoch integer,
            p_status text, p_error jsonb, p_output jsonb, p_checkpoint_id text,
            p_thread_status text, p_snapshot boolean, p_values jsonb, p_values_omitted text[],
            p_interrupts jsonb, p_supersede_approvals boolean
        ) RETURNS text LANGUAGE plpgsql AS $$
        DECLARE
            v_status text;
        BEGIN
            PERFORM 1 FROM threads WHERE thread_id = p_thread FOR UPDATE;
            UPDATE runs SET status = p_status, error = p_error, output = p_output,
                   checkpoint_id = p_checkpoint_id, checkpoint_ns = '',
                   ended_at = now(), updated_at = now(),
                   lease_owner = NULL, lease_expires_at = NULL
             WHERE run_id = p_run AND status = 'running'
               AND lease_owner = p_worker AND lease_epoch = p_epoch;
            IF NOT FOUND THEN
                RETURN NULL;
            END IF;
            UPDATE threads SET
                   status = CASE WHEN EXISTS (
                                SELECT 1 FROM runs WHERE thread_id = p_thread
                                AND status IN ('pending', 'running'))
                            THEN 'busy' ELSE p_thread_status END,
                   updated_at = now(), error = p_error,
                   "values" = CASE WHEN p_snapshot AND "values" IS DISTINCT FROM p_values
                                   THEN p_values ELSE "values" END,
                   values_omitted = CASE WHEN p_snapshot THEN p_values_omitted
                                    ELSE values_omitted END,
                   interrupts = CASE WHEN p_snapshot THEN p_interrupts ELSE interrupts END,
                   state_updated_at = CASE WHEN p_snapshot THEN now()
                                      ELSE state_updated_at END
             WHERE thread_id = p_thread
            RETURNING status INTO v_status;
            IF p_supersede_approvals THEN
                UPDATE approvals SET status = 'superseded', updated_at = now()
                 WHERE thread_id = p_thread AND status = 'pending';
            END IF;
            PERFORM pg_notify('trellis_run_done', p_run::text);
            IF v_status = 'busy' THEN
                PERFORM pg_notify('trellis_runs', '');
            END IF;
            RETURN coalesce(v_status, p_thread_status);
        END $$
        """
    )


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {_NEW_SIGNATURE}")
    op.execute(
        """
        CREATE FUNCTION trellis_finish_run(
            p_run uuid, p_thread uuid, p_worker text, p_epoch integer,
            p_status text, p_error jsonb, p_output jsonb,
            p_thread_status text, p_snapshot boolean, p_values jsonb, p_interrupts jsonb,
            p_supersede_approvals boolean
        ) RETURNS text LANGUAGE plpgsql AS $$
        DECLARE
            v_status text;
        BEGIN
            PERFORM 1 FROM threads WHERE thread_id = p_thread FOR UPDATE;
            UPDATE runs SET status = p_status, error = p_error, output = p_output,
                   ended_at = now(), updated_at = now(),
                   lease_owner = NULL, lease_expires_at = NULL
             WHERE run_id = p_run AND status = 'running'
               AND lease_owner = p_worker AND lease_epoch = p_epoch;
            IF NOT FOUND THEN
                RETURN NULL;
            END IF;
            UPDATE threads SET
                   status = CASE WHEN EXISTS (
                                SELECT 1 FROM runs WHERE thread_id = p_thread
                                AND status IN ('pending', 'running'))
                            THEN 'busy' ELSE p_thread_status END,
                   updated_at = now(), error = p_error,
                   "values" = CASE WHEN p_snapshot THEN p_values ELSE "values" END,
                   interrupts = CASE WHEN p_snapshot THEN p_interrupts ELSE interrupts END,
                   state_updated_at = CASE WHEN p_snapshot THEN now()
                                      ELSE state_updated_at END
             WHERE thread_id = p_thread
            RETURNING status INTO v_status;
            IF p_supersede_approvals THEN
                UPDATE approvals SET status = 'superseded', updated_at = now()
                 WHERE thread_id = p_thread AND status = 'pending';
            END IF;
            PERFORM pg_notify('trellis_run_done', p_run::text);
            IF v_status = 'busy' THEN
                PERFORM pg_notify('trellis_runs', '');
            END IF;
            RETURN coalesce(v_status, p_thread_status);
        END $$
        """
    )
    op.drop_column("threads", "values_omitted")
    op.drop_column("runs", "checkpoint_ns")
    op.drop_column("runs", "checkpoint_id")
