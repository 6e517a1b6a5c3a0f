"""A small OpenAI-compatible chat-completions server for tests, on 127.0.0.1 and a random port.

This module owns the fake: pure asyncio HTTP/1.1 (keep-alive, chunked SSE), so
tests drive the real ``openai`` client and ``ChatOpenAI`` over a loopback
socket. It serves ``GET /v1/models`` and ``POST /v1/chat/completions``, streaming (``stream: true``,
SSE chunks, usage when ``stream_options.include_usage``) and not, and ``POST /v1/embeddings``
(deterministic bag-of-words vectors, see ``fake_embedding``), with scripted
replies (text, tool calls, structured output for tool calling or
``response_format``) and fault injection (the next N requests, optionally for
one model only, answer with a given status), a required API key (401 otherwise) and
a stall before each completion. Every completion request body is recorded.

    async with FakeOpenAI() as fake:
        fake.script(Reply.text("Hello there"), Reply.structured({"score": 0.9, "reason": "ok"}))
        fake.fail_next(2, status=429)
        ... ChatOpenAI(base_url=fake.base_url, api_key="test") ...
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import math
import re
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self

__all__ = ["FakeOpenAI", "Reply"]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    408: "Request Timeout",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    kind: Literal["text", "tool", "structured"]
    content: str = ""
    tool_name: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def text(cls, content: str) -> Reply:
        """A plain assistant message."""
        return cls("text", content=content)

    @classmethod
    def tool_call(cls, name: str, arguments: dict[str, Any]) -> Reply:
        """A call of the named tool."""
        return cls("tool", tool_name=name, arguments=arguments)

    @classmethod
    def structured(cls, data: dict[str, Any]) -> Reply:
        """Structured output: a call of the request's (forced) tool, or JSON content for
        ``response_format`` requests."""
        return cls("structured", arguments=data)


@dataclass
class _Fault:
    remaining: int
    status: int
    model: str | None


class FakeOpenAI:
    """The fake server; use as an async context manager."""

    def __init__(
        self,
        *,
        responder: Callable[[dict[str, Any]], Reply] | None = None,
        api_key: str | None = None,
    ) -> None:
        self.api_key = api_key
        """When set, requests carrying another bearer token are answered 401, as OpenAI does."""
        self.stall = 0.0
        """Seconds each completion waits before it answers (a slow or hung endpoint)."""
        self.requests: list[dict[str, Any]] = []
        """Every request body received, in order (including failed ones)."""
        self._script: deque[Reply] = deque()
        self._faults: list[_Fault] = []
        self._responder = responder
        self._server: asyncio.Server | None = None
        self._ids = itertools.count(1)
        self.port = 0
        self.embedding_dims = 16
        """Length of the vectors `/embeddings` answers (unless the request asks `dimensions`)."""
        self.embedding_requests: list[dict[str, Any]] = []
        """Every `/embeddings` request body received, in order (failed ones included)."""

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give an OpenAI client."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue replies; each successful request consumes one."""
        self._script.extend(replies)

    def fail_next(self, count: int, *, status: int = 429, model: str | None = None) -> None:
        """Answer the next ``count`` requests (for ``model`` only, if given) with ``status``."""
        self._faults.append(_Fault(count, status, model))

    @property
    def pending(self) -> int:
        """Scripted replies not consumed yet."""
        return len(self._script)

    def models_called(self) -> list[str]:
        """The ``model`` of every request, in order."""
        return [str(r.get("model")) for r in self.requests]

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            if hasattr(self._server, "close_clients"):
                self._server.close_clients()
            await self._server.wait_closed()

    # ------------------------------------------------------------------ http

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line.strip():
                    break
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                await self._handle(method, path, headers, body, writer)
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()
                await writer.wait_closed()

    async def _handle(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        writer: asyncio.StreamWriter,
    ) -> None:
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            error = {"message": "Incorrect API key provided", "type": "invalid_request_error"}
            await self._json(writer, 401, {"error": error})
            return
        if method == "GET" and path.rstrip("/").endswith("/models"):
            await self._json(writer, 200, {"object": "list", "data": [{"id": "fake-model"}]})
            return
        if method == "POST" and path.rstrip("/").endswith("/embeddings"):
            await self._embeddings(json.loads(body or b"{}"), writer)
            return
        if method != "POST" or not path.rstrip("/").endswith("/chat/completions"):
            await self._json(writer, 404, {"error": {"message": f"no route {method} {path}"}})
            return
        request = json.loads(body or b"{}")
        self.requests.append(request)
        if self.stall:
            await asyncio.sleep(self.stall)
        if await self._injected_fault(request, writer):
            return
        if self._script:
            reply = self._script.popleft()
        elif self._responder is not None:
            reply = self._responder(request)
        else:
            error = {"message": "no scripted reply left", "type": "fake", "code": None}
            await self._json(writer, 400, {"error": error})
            return
        message = self._message(reply, request)
        if request.get("stream"):
            await self._stream(writer, request, message)
        else:
            await self._json(writer, 200, self._completion(request, message))

    async def _injected_fault(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        """Answer with the first injected fault left for the request's model, if any."""
        model = str(request.get("model", ""))
        for fault in self._faults:
            if fault.remaining > 0 and fault.model in (None, model):
                fault.remaining -= 1
                error = {"message": f"injected {fault.status}", "type": "fake", "code": None}
                await self._json(writer, fault.status, {"error": error})
                return True
        return False

    async def _embeddings(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        self.embedding_requests.append(request)
        if await self._injected_fault(request, writer):
            return
        inputs = request.get("input", [])
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        dims = int(request.get("dimensions") or self.embedding_dims)
        data = []
        for i, text in enumerate(texts):
            vector = fake_embedding(str(text), dims)
            encoded: object = vector
            if request.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(len(str(t).split()) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        await self._json(
            writer,
            200,
            {"object": "list", "data": data, "model": request.get("model", ""), "usage": usage},
        )

    async def _json(self, writer: asyncio.StreamWriter, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(data)}\r\n\r\n"
        )
        writer.write(head.encode() + data)
        await writer.drain()

    async def _stream(
        self, writer: asyncio.StreamWriter, request: dict[str, Any], message: dict[str, Any]
    ) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        ident, created, model = f"chatcmpl-{next(self._ids)}", int(time.time()), request["model"]

        async def send(
            delta: dict[str, Any] | None, finish: str | None = None, **extra: Any
        ) -> None:
            chunk: dict[str, Any] = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": []
                if delta is None
                else [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            await self._chunk(writer, f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        if message.get("tool_calls"):
            for index, call in enumerate(message["tool_calls"]):
                head = {"index": index, "id": call["id"], "type": "function"}
                head["function"] = {"name": call["function"]["name"], "arguments": ""}
                await send({"tool_calls": [head]})
                arguments = call["function"]["arguments"]
                for start in range(0, len(arguments), 8):
                    piece = {
                        "index": index,
                        "function": {"arguments": arguments[start : start + 8]},
                    }
                    await send({"tool_calls": [piece]})
            await send({}, "tool_calls")
        else:
            for token in _tokens(message["content"] or ""):
                await send({"content": token})
            await send({}, "stop")
        if (request.get("stream_options") or {}).get("include_usage"):
            await send(None, usage=self._usage(request, message))
        await self._chunk(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def _chunk(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        await writer.drain()

    # ------------------------------------------------------------------ payloads

    def _message(self, reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
        if reply.kind == "text":
            return {"role": "assistant", "content": reply.content}
        name = reply.tool_name
        if reply.kind == "structured":
            tools = request.get("tools") or []
            if not tools:
                return {"role": "assistant", "content": json.dumps(reply.arguments)}
            choice = request.get("tool_choice")
            if isinstance(choice, dict):
                name = choice["function"]["name"]
            else:
                name = tools[0]["function"]["name"]
        call = {
            "id": f"call_{next(self._ids)}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(reply.arguments)},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}

    def _completion(self, request: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
        finish = "tool_calls" if message.get("tool_calls") else "stop"
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": self._usage(request, message),
        }

    @staticmethod
    def _usage(request: dict[str, Any], message: dict[str, Any]) -> dict[str, int]:
        prompt = len(json.dumps(request.get("messages", [])).split())
        completion = len(json.dumps(message).split())
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }


def fake_embedding(text: str, dims: int) -> list[float]:
    """A unit vector counting the words of `text` into `dims` buckets (crc32 of each
    lower-cased word): texts sharing words are close, texts sharing none are orthogonal
    unless their words collide."""
    vector = [0.0] * dims
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[zlib.crc32(word.encode()) % dims] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def _tokens(text: str) -> list[str]:
    """Split text into word-sized stream tokens that concatenate back to ``text``."""
    tokens: list[str] = []
    for word in text.split(" "):
        tokens.append(word + " ")
    if tokens:
        tokens[-1] = tokens[-1][:-1]
    return [t for t in tokens if t]
