"""trellis_insert_run and trellis_create_run: creating a run in one call

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 12:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # What an executor needs of a run's assistant (claims and local launches read it).
    op.execute(
        """
        CREATE FUNCTION trellis_run_assistant(p_assistant uuid) RETURNS jsonb
        LANGUAGE sql STABLE AS $$
            SELECT jsonb_build_object(
                'assistant_id', a.assistant_id, 'graph_id', a.graph_id,
                'config', a.config, 'context', a.context, 'metadata', a.metadata)
            FROM assistants a WHERE a.assistant_id = p_assistant
        $$
        """
    )
    # Insert a run (pending, or running under `p_claim_for`'s lease when the creating
    # process executes it) and mark its thread busy; the caller holds the thread's lock.
    op.execute(
        """
        CREATE FUNCTION trellis_insert_run(
            p_run uuid, p_thread uuid, p_assistant uuid, p_owner text,
            p_metadata jsonb, p_kwargs jsonb, p_strategy text, p_temporary boolean,
            p_after double precision, p_claim_for text, p_lease double precision,
            p_thread_metadata jsonb, p_wake text
        ) RETURNS SETOF runs LANGUAGE plpgsql AS $$
        DECLARE
            v_claimed boolean := p_claim_for IS NOT NULL;
            v_run runs%ROWTYPE;
        BEGIN
            INSERT INTO runs (run_id, thread_id, assistant_id, owner, metadata, kwargs,
                              multitask_strategy, temporary, not_before, status, attempt,
                              lease_owner, lease_epoch, lease_expires_at, started_at)
            VALUES (p_run, p_thread, p_assistant, p_owner, p_metadata, p_kwargs,
                    p_strategy, p_temporary, now() + make_interval(secs => p_after),
                    CASE WHEN v_claimed THEN 'running' ELSE 'pending' END,
                    CASE WHEN v_claimed THEN 1 ELSE 0 END, p_claim_for,
                    CASE WHEN v_claimed THEN 1 ELSE 0 END,
                    CASE WHEN v_claimed THEN now() + make_interval(secs => p_lease) END,
                    CASE WHEN v_claimed THEN now() END)
            RETURNING * INTO v_run;
            UPDATE threads SET status = 'busy', updated_at = now(), error = NULL,
                               metadata = metadata || p_thread_metadata
             WHERE thread_id = p_thread;
            IF p_wake IS NOT NULL THEN
                PERFORM pg_notify(p_wake, '');
            END IF;
            RETURN NEXT v_run;
        END $$
        """
    )
    # The common creation in one call: the assistant (visible to the owner, its graph
    # served), the thread locked, the multitask check, then the insert. Refusals raise
    # (nothing is written): TR010 no such assistant, TR011 graph not served, TR012 no such
    # thread, TR013 busy and `reject`, TR014 busy and `interrupt`/`rollback` (the caller
    # takes its full path), TR015 a resume with nothing to resume.
    op.execute(
        """
        CREATE FUNCTION trellis_create_run(
            p_owner text, p_assistant uuid, p_graphs text[], p_thread uuid, p_run uuid,
            p_metadata jsonb, p_kwargs jsonb, p_strategy text, p_after double precision,
            p_resume boolean, p_claim_for text, p_lease double precision, p_wake text
        ) RETURNS SETOF runs LANGUAGE plpgsql AS $$
        DECLARE
            v_graph text;
            v_status text;
            v_active boolean;
            v_claim text;
        BEGIN
            SELECT graph_id INTO v_graph FROM assistants
             WHERE assistant_id = p_assistant AND (owner IS NULL OR owner = p_owner);
            IF NOT FOUND THEN
                RAISE EXCEPTION 'assistant not found' USING ERRCODE = 'TR010';
            END IF;
            IF NOT v_graph = ANY(p_graphs) THEN
                RAISE EXCEPTION '%', v_graph USING ERRCODE = 'TR011';
            END IF;
            SELECT status INTO v_status FROM threads
             WHERE thread_id = p_thread AND owner = p_owner FOR UPDATE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'thread not found' USING ERRCODE = 'TR012';
            END IF;
            v_active := EXISTS (SELECT 1 FROM runs WHERE thread_id = p_thread
                                AND status IN ('pending', 'running'));
            IF v_active AND p_strategy = 'reject' THEN
                RAISE EXCEPTION 'thread busy' USING ERRCODE = 'TR013';
            END IF;
            IF v_active AND p_strategy IN ('interrupt', 'rollback') THEN
                RAISE EXCEPTION 'earlier runs to stop' USING ERRCODE = 'TR014';
            END IF;
            IF p_resume AND NOT v_active AND v_status IS DISTINCT FROM 'interrupted' THEN
                RAISE EXCEPTION 'nothing to resume' USING ERRCODE = 'TR015';
            END IF;
            v_claim := CASE WHEN v_active OR p_after > 0 THEN NULL ELSE p_claim_for END;
            RETURN QUERY SELECT * FROM trellis_insert_run(
                p_run, p_thread, p_assistant, p_owner, p_metadata,
                p_kwargs || jsonb_build_object('graph_id', v_graph), p_strategy, false,
                p_after, v_claim, p_lease,
                jsonb_build_object('graph_id', v_graph, 'assistant_id', p_assistant::text),
                CASE WHEN v_claim IS NULL THEN p_wake END);
        END $$
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION trellis_create_run(text, uuid, text[], uuid, uuid, jsonb, jsonb, text, "
        "double precision, boolean, text, double precision, text)"
    )
    op.execute(
        "DROP FUNCTION trellis_insert_run(uuid, uuid, uuid, text, jsonb, jsonb, text, boolean, "
        "double precision, text, double precision, jsonb, text)"
    )
    op.execute("DROP FUNCTION trellis_run_assistant(uuid)")
