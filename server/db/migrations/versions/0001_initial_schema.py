"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 04:41:09.990532
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('assistants',
    sa.Column('assistant_id', sa.UUID(), nullable=False),
    sa.Column('graph_id', sa.Text(), nullable=False),
    sa.Column('owner', sa.Text(), nullable=True),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('context', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('version', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('assistant_id', name=op.f('pk_assistants'))
    )
    op.create_index('ix_assistants_graph_id', 'assistants', ['graph_id'], unique=False)
    op.create_index('ix_assistants_metadata', 'assistants', ['metadata'], unique=False, postgresql_using='gin')
    op.create_table('threads',
    sa.Column('thread_id', sa.UUID(), nullable=False),
    sa.Column('owner', sa.Text(), nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'idle'"), nullable=False),
    sa.Column('values', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('interrupts', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('error', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('state_updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('thread_id', name=op.f('pk_threads'))
    )
    op.create_index('ix_threads_metadata', 'threads', ['metadata'], unique=False, postgresql_using='gin')
    op.create_index('ix_threads_owner_created', 'threads', ['owner', 'created_at'], unique=False)
    op.create_table('assistant_versions',
    sa.Column('assistant_id', sa.UUID(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('graph_id', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('context', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['assistant_id'], ['assistants.assistant_id'], name=op.f('fk_assistant_versions_assistant_id_assistants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('assistant_id', 'version', name=op.f('pk_assistant_versions'))
    )
    op.create_table('runs',
    sa.Column('run_id', sa.UUID(), nullable=False),
    sa.Column('thread_id', sa.UUID(), nullable=False),
    sa.Column('assistant_id', sa.UUID(), nullable=False),
    sa.Column('owner', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), server_default=sa.text("'pending'"), nullable=False),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('kwargs', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('multitask_strategy', sa.Text(), server_default=sa.text("'enqueue'"), nullable=False),
    sa.Column('temporary', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('error', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('output', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('cancel_action', sa.Text(), nullable=True),
    sa.Column('not_before', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('attempt', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('lease_owner', sa.Text(), nullable=True),
    sa.Column('lease_epoch', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['thread_id'], ['threads.thread_id'], name=op.f('fk_runs_thread_id_threads'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_runs'))
    )
    op.create_index('ix_runs_pending', 'runs', ['not_before', 'created_at'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.create_index('ix_runs_thread_created', 'runs', ['thread_id', 'created_at'], unique=False)
    op.create_index('uq_runs_one_running_per_thread', 'runs', ['thread_id'], unique=True, postgresql_where=sa.text("status = 'running'"))
    # Fencing: checkpoint writes call this first, in their own transaction. It share-locks
    # the run row, so a takeover (an UPDATE of the lease) waits for writes in flight, and
    # it aborts the transaction when the caller no longer holds the lease.
    op.execute(
        """
        CREATE FUNCTION trellis_assert_lease(p_run uuid, p_worker text, p_epoch integer)
        RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM 1 FROM runs
            WHERE run_id = p_run AND lease_owner = p_worker AND lease_epoch = p_epoch
              AND status = 'running'
            FOR SHARE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'run % no longer holds lease epoch %', p_run, p_epoch
                    USING ERRCODE = 'TR001';
            END IF;
        END $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION trellis_assert_lease(uuid, text, integer)")
    op.drop_index('uq_runs_one_running_per_thread', table_name='runs', postgresql_where=sa.text("status = 'running'"))
    op.drop_index('ix_runs_thread_created', table_name='runs')
    op.drop_index('ix_runs_pending', table_name='runs', postgresql_where=sa.text("status = 'pending'"))
    op.drop_table('runs')
    op.drop_table('assistant_versions')
    op.drop_index('ix_threads_owner_created', table_name='threads')
    op.drop_index('ix_threads_metadata', table_name='threads', postgresql_using='gin')
    op.drop_table('threads')
    op.drop_index('ix_assistants_metadata', table_name='assistants', postgresql_using='gin')
    op.drop_index('ix_assistants_graph_id', table_name='assistants')
    op.drop_table('assistants')
