"""trellis_finish_run: a run's outcome and its thread's status in one call

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 11:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # What a worker does when a run ends, server-side: one round trip instead of a
    # transaction of six statements. Each statement takes a fresh snapshot (READ
    # COMMITTED), so the thread's status sees runs queued by a creator that held the
    # thread lock just before. Returns the thread's new status, or NULL when the
    # caller no longer holds the run's lease (then nothing is written).
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
            -- The thread first, as run creation locks it.
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


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION trellis_finish_run(uuid, uuid, text, integer, text, jsonb, jsonb, "
        "text, boolean, jsonb, jsonb, boolean)"
    )
