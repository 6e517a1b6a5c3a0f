"""The error tree of Trellis (mapped to HTTP in one place: `server.http.error_handlers`).

    TrellisError                    every domain error: carries `detail` and a stable `code`
    ├── NotFound                    404: missing, or not visible to the caller
    ├── Conflict                    409
    │   ├── AlreadyExists
    │   ├── ThreadBusy              a run is active and the strategy is `reject`
    │   └── ApprovalClosed          the approval is not pending; its current state is in the body
    │       ├── AlreadyDecided      `already_decided`: someone (or a plain resume) decided it
    │       ├── ApprovalSuperseded  `superseded`: the thread moved on (newer run, fork)
    │       └── ApprovalExpired     `expired`: its deadline passed
    ├── InvalidRequest              422: well-formed JSON that makes no sense
    │   └── NothingToResume         `command.resume` on a thread with no pending interrupt
    ├── GraphUnavailable            424: the graph failed to import or build (names it and why)
    ├── RateLimited                 429: the caller used up a rate limit; `Retry-After` says when
    └── Unavailable                 503: a backing service cannot be reached
        └── EmbedderUnavailable     `embedder_unavailable`: the store's embedding model failed

Domain code raises these without knowing about HTTP; `error_handlers.install` maps them to a
JSON body `{"detail": ..., "code": ...}`. Once an SSE stream has started, a
failure is an `error` event instead.
"""

from __future__ import annotations

import math
from typing import ClassVar

from server.core.types import Approval


class TrellisError(Exception):
    """Base of every domain error."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> dict[str, object]:
        """The JSON error body; a subclass may add fields next to `detail` and `code`."""
        return error_body(self.detail, self.code)

    def headers(self) -> dict[str, str] | None:
        """Response headers the error calls for, if any."""
        return None


class NotFound(TrellisError):
    """Raise when a resource does not exist or belongs to someone else."""

    status = 404
    code = "not_found"


class Conflict(TrellisError):
    """Raise when the request conflicts with the current state of a resource."""

    status = 409
    code = "conflict"


class AlreadyExists(Conflict):
    """Raise on create with `if_exists: raise` when the id is taken."""

    code = "already_exists"


class ThreadBusy(Conflict):
    """Raise when a thread has an active run and the multitask strategy is `reject`."""

    code = "thread_busy"


class ApprovalClosed(Conflict):
    """Raise when deciding an approval that is no longer pending."""

    code = "approval_closed"

    def __init__(self, detail: str, approval: Approval | None = None) -> None:
        super().__init__(detail)
        self.approval = approval

    def body(self) -> dict[str, object]:
        """The error body carries the approval as it now stands (its decision included)."""
        out = super().body()
        if self.approval is not None:
            out["approval"] = self.approval
        return out


class AlreadyDecided(ApprovalClosed):
    """Raise when the approval was decided already."""

    code = "already_decided"


class ApprovalSuperseded(ApprovalClosed):
    """Raise when the approval's interrupt is no longer pending on its thread."""

    code = "superseded"


class ApprovalExpired(ApprovalClosed):
    """Raise when the approval's deadline passed."""

    code = "expired"


class InvalidRequest(TrellisError):
    """Raise for a syntactically valid request that cannot be carried out as asked."""

    status = 422
    code = "invalid_request"


class BadRequest(TrellisError):
    """Raise for a request the official server refuses with 400 (a run with both
    `config.configurable` and `context`)."""

    status = 400
    code = "bad_request"


class NothingToResume(InvalidRequest):
    """Raise when `command.resume` targets a thread with no pending interrupt."""

    status = 400
    code = "nothing_to_resume"


class RateLimited(TrellisError):
    """Raise when a request would pass a rate limit (past the one the middleware counts:
    a batch of runs counts each run)."""

    status = 429
    code = "rate_limited"

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = max(1, math.ceil(retry_after))

    def headers(self) -> dict[str, str] | None:
        """`Retry-After`, in whole seconds."""
        return {"Retry-After": str(self.retry_after)}


class GraphUnavailable(TrellisError):
    """Raise when a served graph failed to import, or its factory failed to build it: the
    detail names the graph, its file and the error (424, as the official server answers
    for a graph that is not valid)."""

    status = 424
    code = "graph_unavailable"


class Unavailable(TrellisError):
    """Raise when a backing service (database, Redis) cannot be reached."""

    status = 503
    code = "unavailable"


class EmbedderUnavailable(Unavailable):
    """Raise when the store's semantic index cannot embed a text (its model failed or is
    unreachable): nothing was written."""

    code = "embedder_unavailable"


def error_body(detail: object, code: str) -> dict[str, object]:
    """The JSON body of every error response."""
    return {"detail": detail, "code": code}
