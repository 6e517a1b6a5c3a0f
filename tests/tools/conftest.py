"""Fixtures for the tools tests: a loopback HTTP server and a shared MiniLM embedder."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tools.embeddings import MiniLMEmbedder


class LoopbackServer:
    """A tiny HTTP server on 127.0.0.1 with a few fixed routes and per-path hit counts.

    Routes: ``/bytes/<name>`` serves ``files[name]`` (with a Content-Length),
    ``/stream/<n>`` sends n bytes without a Content-Length, ``/redirect?to=<url>``
    answers 302, ``/host`` echoes the Host header, ``/status/<code>`` answers
    with that status, and ``POST /v1/embeddings`` is an OpenAI-style embeddings
    endpoint returning fixed vectors of ``embedding_dimension``.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: Counter[str] = Counter()
        self.embedding_dimension = 8
        self.embedding_requests: list[dict[str, object]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _send(
                self, status: int, body: bytes, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                server.hits[url.path] += 1
                parts = url.path.strip("/").split("/")
                if parts[0] == "bytes" and len(parts) == 2 and parts[1] in server.files:
                    self._send(200, server.files[parts[1]])
                elif parts[0] == "stream" and len(parts) == 2:
                    self.send_response(200)
                    self.end_headers()
                    remaining = int(parts[1])
                    try:
                        while remaining > 0:
                            piece = min(remaining, 64 * 1024)
                            self.wfile.write(b"x" * piece)
                            remaining -= piece
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                elif parts[0] == "redirect":
                    target = urllib.parse.parse_qs(url.query)["to"][0]
                    self._send(302, b"", {"Location": target})
                elif parts[0] == "host":
                    self._send(200, (self.headers.get("Host") or "").encode())
                elif parts[0] == "status" and len(parts) == 2:
                    self._send(int(parts[1]), b"status")
                else:
                    self._send(404, b"not found")

            def do_POST(self) -> None:
                server.hits[self.path] += 1
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                if self.path.endswith("/embeddings"):
                    server.embedding_requests.append(request)
                    inputs = request["input"]
                    data = [
                        {
                            "object": "embedding",
                            "index": i,
                            # Deliberately not unit length: the adapter must normalise.
                            "embedding": [float(i + 1)] * server.embedding_dimension,
                        }
                        for i in range(len(inputs))
                    ]
                    body = {
                        "object": "list",
                        "data": data,
                        "model": request["model"],
                        "usage": {"prompt_tokens": 1, "total_tokens": 1},
                    }
                    self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
                else:
                    self._send(404, b"not found")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture(scope="session")
def loopback() -> Iterator[LoopbackServer]:
    """A loopback HTTP server shared by the session."""
    server = LoopbackServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def minilm() -> MiniLMEmbedder:
    """One MiniLM embedder for the session (its weights load once)."""
    return MiniLMEmbedder(batch_size=32)
