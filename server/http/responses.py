"""Response classes that encode with Trellis' serializer."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from server.core.encoding import dumps


class JSONResponse(Response):
    """JSON encoded with orjson and Trellis' default for LangGraph objects."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)
