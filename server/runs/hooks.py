"""What the run machinery calls inside its own transactions, for components built on top of it.

Runs own this seam and know nothing of who implements it: the approvals service records
the interrupts a run ends with (and closes those a new run answers) in the same transaction
that records the run, so an approval exists exactly when the thread's state says it should.
`services.py` passes the implementation in.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from server.core.schemas import RunCreate
from server.core.types import Interrupts, RunRow

Notice = tuple[str, Mapping[str, object]]
"""(event, payload): something to announce once the transaction that produced it commits."""


class RunHooks(Protocol):
    """Called by `RunManager` and `Executor` inside their transactions."""

    async def on_run_created(
        self,
        conn: AsyncConnection,
        *,
        owner: str,
        thread_id: uuid.UUID,
        run_id: uuid.UUID,
        body: RunCreate,
        approval_id: uuid.UUID | None = None,
    ) -> list[Notice]:
        """A run is being inserted; raise to refuse it (nothing is written)."""
        ...

    async def on_run_finished(
        self,
        conn: AsyncConnection,
        run: RunRow,
        interrupts: Interrupts | None,
    ) -> list[Notice]:
        """A run's outcome is being recorded; `interrupts` None: its final state is unknown."""
        ...

    def notify(self, notices: list[Notice]) -> None:
        """Announce what the committed transaction produced (never inside it)."""
        ...
