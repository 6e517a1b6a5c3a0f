"""The ASGI helpers the middlewares share."""

from __future__ import annotations

import orjson
from starlette.types import Message

from server.http.asgi import client_address, replay, send_json, too_many


class Sent:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])


async def test_send_json_answers_the_error_body() -> None:
    sent = Sent()
    await send_json(sent, 404, "thread not found", "not_found", {"X-Extra": "é"})
    start, body = sent.messages
    assert start["status"] == 404
    assert orjson.loads(body["body"]) == {"detail": "thread not found", "code": "not_found"}
    assert sent.headers[b"content-type"] == b"application/json"
    assert sent.headers[b"content-length"] == str(len(body["body"])).encode()
    assert sent.headers[b"x-extra"] == "é".encode("latin-1")


async def test_too_many_rounds_retry_after_up() -> None:
    sent = Sent()
    await too_many(sent, 1.2, "reads")
    assert sent.messages[0]["status"] == 429
    assert sent.headers[b"retry-after"] == b"2"
    detail = orjson.loads(sent.messages[1]["body"])
    assert detail == {
        "detail": "rate limit exceeded for reads; retry in 2 s",
        "code": "rate_limited",
    }


def test_client_address() -> None:
    assert client_address({"type": "http", "client": ("10.0.0.7", 5123)}) == "10.0.0.7"
    assert client_address({"type": "http", "client": None}) == "unknown"
    assert client_address({"type": "http"}) == "unknown"


async def test_replay_yields_the_body_once_then_the_real_receive() -> None:
    async def real() -> Message:
        return {"type": "http.disconnect"}

    receive = replay(b"abc", real)
    assert await receive() == {"type": "http.request", "body": b"abc", "more_body": False}
    assert await receive() == {"type": "http.disconnect"}
