"""The HTTP/1.1 protocol uvicorn serves Trellis with: a bound on request heads.

Headers arrive before anything in the app can look at them (authentication included), so
their size is bounded where they are parsed. uvicorn's h11 protocol bounds them itself
(`h11_max_incomplete_event_size`); its httptools protocol (the default when httptools is
installed, as here) buffers a header of any size until it ends. `BoundedHttpToolsProtocol`
counts the bytes of each request's line and headers as they arrive and answers 431 once
they pass the same bound, so either protocol keeps the one limit `MAX_HEADER_BYTES` sets:

    uvicorn.run(app, http=BoundedHttpToolsProtocol,
                h11_max_incomplete_event_size=settings.max_header_bytes)
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from server.core.errors import error_body

H11_DEFAULT_HEAD_BYTES = 16 * 1024
"""h11's own bound, used when uvicorn is given none."""
LINGER_SECONDS = 1.0
"""After a refusal, how long what the client still sends is read and dropped before the
connection closes: closing on unread bytes resets it, and the client would lose the 431."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request line plus headers over the bound."""

    _in_head = True
    _head_bytes = 0
    _refused = False

    @property
    def max_head_bytes(self) -> int:
        """The bound (uvicorn's `h11_max_incomplete_event_size`, so both protocols agree)."""
        return self.config.h11_max_incomplete_event_size or H11_DEFAULT_HEAD_BYTES

    def data_received(self, data: bytes) -> None:
        """Feed the parser; while a head is arriving, no more of it than the bound."""
        if self._refused:
            return  # dropped until the connection closes
        if not self._in_head:
            super().data_received(data)
            return
        room = self.max_head_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # The bytes past the bound may be the body, once the head ends within it.
        super().data_received(data[:room])
        self._head_bytes += room
        if self.transport.is_closing():
            return
        if self._in_head:
            self._refuse()
            return
        super().data_received(data[room:])

    def on_headers_complete(self) -> None:
        """The head ended within the bound: its body is not counted."""
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The next request's head starts after this one."""
        self._in_head = True
        self._head_bytes = 0
        super().on_message_complete()

    def _refuse(self) -> None:
        self.logger.warning("request head over %d bytes refused", self.max_head_bytes)
        body = orjson.dumps(
            error_body(
                f"request line and headers exceed {self.max_head_bytes} bytes",
                "headers_too_large",
            )
        )
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[431],
                    b"content-type: application/json\r\n",
                    b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
        )
        self._refused = True
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the answer, then the end
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
