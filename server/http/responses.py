"""Response classes that encode with Trellis' serializer."""

from __future__ import annotations

from starlette.responses import Response

from server.core.encoding import dumps


class JSONResponse(Response):
    """JSON encoded with orjson and Trellis' default for LangGraph objects."""

    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return dumps(content)
