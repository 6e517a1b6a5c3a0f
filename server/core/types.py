"""The types the layers share: JSON values, and the rows and wire objects of each resource.

Rows mirror `langgraph_sdk.schema` (mirrored, not imported: rows carry `uuid.UUID` and
`datetime` where the SDK's types say `str`; `server.core.encoding` writes them as the wire
strings). Values the server passes through without looking inside are `object`.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
"""A JSON value, as parsed from or written to the wire or JSONB."""

JsonObject: TypeAlias = dict[str, JsonValue]
"""A JSON object."""

Json: TypeAlias = dict[str, Any]  # Any: a caller's JSON object, read by key with no schema
"""A JSON object whose values Trellis reads without a schema (request fields, JSONB columns)."""

RunStatus = Literal["pending", "running", "success", "error", "timeout", "interrupted"]
"""Where a run is in its lifecycle (`pending` → `running` → one of the four ends)."""

ThreadStatus = Literal["idle", "busy", "interrupted", "error"]
"""A thread's status, derived from its runs and its latest checkpoint."""

MultitaskStrategy = Literal["reject", "interrupt", "rollback", "enqueue"]
"""What a new run does when its thread already has an active run."""

# Resource rows and wire objects (TypedDicts) follow, one section per resource.

# --- runs ------------------------------------------------------------------------------


# --- threads and their state -----------------------------------------------------------


# --- assistants ------------------------------------------------------------------------


# --- approvals -------------------------------------------------------------------------
