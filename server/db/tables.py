"""SQLAlchemy models for Trellis' own tables.

LangGraph's checkpoint tables are created by `AsyncPostgresSaver.setup()` and are
not modelled here. Every resource row carries an `owner`; `None` on an assistant
means a system assistant visible to everyone.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, MappedColumn, mapped_column

from server.core.types import Json

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonDict = Json


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations are stable."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {JsonDict: JSONB, uuid.UUID: UUID(as_uuid=True)}


def _now() -> MappedColumn[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Assistant(Base):
    """An assistant: a graph plus a versioned configuration."""

    __tablename__ = "assistants"

    assistant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    graph_id: Mapped[str] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    config: Mapped[JsonDict] = mapped_column(server_default=text("'{}'::jsonb"))
    context: Mapped[JsonDict] = mapped_column(server_default=text("'{}'::jsonb"))
    metadata_: Mapped[JsonDict] = mapped_column("metadata", server_default=text("'{}'::jsonb"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()

    __table_args__ = (
        Index("ix_assistants_graph_id", "graph_id"),
        Index("ix_assistants_metadata", "metadata", postgresql_using="gin"),
    )


class AssistantVersion(Base):
    """One immutable version of an assistant's configuration."""

    __tablename__ = "assistant_versions"

    assistant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assistants.assistant_id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    graph_id: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    config: Mapped[JsonDict] = mapped_column(server_default=text("'{}'::jsonb"))
    context: Mapped[JsonDict] = mapped_column(server_default=text("'{}'::jsonb"))
    metadata_: Mapped[JsonDict] = mapped_column("metadata", server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = _now()

    __table_args__ = (PrimaryKeyConstraint("assistant_id", "version"),)


class Thread(Base):
    """A conversation thread; its state lives in LangGraph's checkpoint tables."""

    __tablename__ = "threads"

    thread_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(Text)
    metadata_: Mapped[JsonDict] = mapped_column("metadata", server_default=text("'{}'::jsonb"))
    config: Mapped[JsonDict] = mapped_column(server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(Text, server_default=text("'idle'"))
    values: Mapped[JsonDict | None] = mapped_column()
    """A bounded copy of the latest values, for search: keys too large for it are left out."""
    values_omitted: Mapped[list[str]] = mapped_column(
        ARRAY(Text), server_default=text("'{}'::text[]")
    )
    """The top-level keys left out of `values` (read from the latest checkpoint instead)."""
    interrupts: Mapped[JsonDict] = mapped_column(server_default=text("'{}'::jsonb"))
    error: Mapped[JsonDict | None] = mapped_column()
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    state_updated_at: Mapped[datetime] = _now()
    ttl_strategy: Mapped[str | None] = mapped_column(Text)
    """`delete` or `keep_latest`: what the sweeper does once the thread expires."""
    ttl_minutes: Mapped[float | None] = mapped_column(Float)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the TTL applies; a new run moves it to `now() + ttl_minutes` (migration 0007)."""
    retention_due: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    """A run wrote checkpoints since the sweeper last trimmed them to the last N kept."""

    __table_args__ = (
        Index("ix_threads_owner_created", "owner", "created_at"),
        Index("ix_threads_metadata", "metadata", postgresql_using="gin"),
        Index(
            "ix_threads_expires_at", "expires_at", postgresql_where=text("expires_at IS NOT NULL")
        ),
        Index("ix_threads_retention_due", "updated_at", postgresql_where=text("retention_due")),
        CheckConstraint(
            "(ttl_strategy IS NULL AND ttl_minutes IS NULL) OR "
            "(ttl_strategy IN ('delete', 'keep_latest') AND ttl_minutes > 0)",
            name="ttl",
        ),
    )


class Run(Base):
    """A run of an assistant on a thread; also the unit of the run queue."""

    __tablename__ = "runs"

    run_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    thread_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("threads.thread_id", ondelete="CASCADE")
    )
    assistant_id: Mapped[uuid.UUID] = mapped_column()
    owner: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))
    metadata_: Mapped[JsonDict] = mapped_column("metadata", server_default=text("'{}'::jsonb"))
    kwargs: Mapped[JsonDict] = mapped_column(server_default=text("'{}'::jsonb"))
    multitask_strategy: Mapped[str] = mapped_column(Text, server_default=text("'enqueue'"))
    temporary: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    error: Mapped[JsonDict | None] = mapped_column()
    output: Mapped[JsonDict | None] = mapped_column()
    """`__error__` or `__interrupt__`; the values are the final checkpoint's (rows written
    before migration 0006 hold the full values)."""
    checkpoint_id: Mapped[str | None] = mapped_column(Text)
    """The thread's latest checkpoint when the run ended: where its output is read from."""
    checkpoint_ns: Mapped[str] = mapped_column(Text, server_default=text("''"))
    cancel_action: Mapped[str | None] = mapped_column(Text)
    not_before: Mapped[datetime] = _now()
    attempt: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_epoch: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_runs_thread_created", "thread_id", "created_at"),
        # The database, not a Python dict, guarantees one running run per thread.
        Index(
            "uq_runs_one_running_per_thread",
            "thread_id",
            unique=True,
            postgresql_where=text("status = 'running'"),
        ),
        Index(
            "ix_runs_pending",
            "not_before",
            "created_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )


class ApiKey(Base):
    """An API key: only its SHA-256 hash is stored; `key_id` is the public lookup prefix."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(Text, primary_key=True)
    owner: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    created_at: Mapped[datetime] = _now()
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_api_keys_owner", "owner"),)


class Approval(Base):
    """A human decision awaited by an `interrupt()`: one row per (thread, interrupt id)."""

    __tablename__ = "approvals"

    approval_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    thread_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("threads.thread_id", ondelete="CASCADE")
    )
    run_id: Mapped[uuid.UUID] = mapped_column()
    """The run that reached the interrupt (runs may be deleted; no foreign key)."""
    assistant_id: Mapped[uuid.UUID] = mapped_column()
    owner: Mapped[str] = mapped_column(Text)
    interrupt_id: Mapped[str] = mapped_column(Text)
    task_id: Mapped[str] = mapped_column(Text)
    value: Mapped[object] = mapped_column(JSONB, nullable=True)
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))
    decision: Mapped[JsonDict | None] = mapped_column()
    decided_by: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resume_run_id: Mapped[uuid.UUID | None] = mapped_column()
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()

    __table_args__ = (
        UniqueConstraint("thread_id", "interrupt_id", name="uq_approvals_thread_interrupt"),
        Index("ix_approvals_owner_created", "owner", "created_at"),
        Index(
            "ix_approvals_pending_expiry",
            "expires_at",
            postgresql_where=text("status = 'pending' AND expires_at IS NOT NULL"),
        ),
    )
