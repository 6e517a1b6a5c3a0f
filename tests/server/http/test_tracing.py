"""OpenTelemetry spans: request → run → node → model call, joined to the client's
`traceparent`; none made while tracing is off."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from server.core import tracing
from server.core.settings import Settings
from tests.support.security import security_settings, trellis
from tests.support.servers import ROOT, TEST_GRAPHS

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def settings(security_db: str, tmp_path: Path) -> Settings:
    config = tmp_path / "langgraph.json"
    graph = ROOT / "tests" / "support" / "graphs" / "telemetry.py"
    config.write_text(
        json.dumps(
            {
                "dependencies": [str(TEST_GRAPHS.parent)],
                "graphs": {"traced_chat": f"{graph}:graph"},
            }
        )
    )
    return security_settings(security_db, graphs_config=config, rate_limit_enabled=False)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    undo = tracing.use(provider)
    yield exporter
    undo()
    provider.shutdown()


def named(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def ids(span: ReadableSpan) -> tuple[str, int]:
    """The span's trace id (hex) and span id."""
    assert span.context is not None
    return f"{span.context.trace_id:032x}", span.context.span_id


def attributes(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


async def test_a_run_is_traced_under_the_request_and_the_clients_trace(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    async with trellis(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        thread = (await http.post("/threads", json={})).json()
        answer = await http.post(
            f"/threads/{thread['thread_id']}/runs/wait",
            json={"assistant_id": "traced_chat", "input": {"text": "hi"}},
            headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01"},
        )
        assert answer.status_code == 200, answer.text
    finished = spans.get_finished_spans()
    request = named(finished, "POST /threads/{thread_id}/runs/wait")
    run = named(finished, "run traced_chat")
    node = named(finished, "node answer")
    model = named(finished, "chat scripted-1")

    # One trace, the client's: each span under the one before.
    assert {ids(span)[0] for span in (request, run, node, model)} == {TRACE_ID}
    assert parent_of(request) == int(CLIENT_SPAN, 16)
    assert parent_of(run) == ids(request)[1]
    assert parent_of(node) == ids(run)[1]
    assert parent_of(model) == ids(node)[1]
    assert attributes(request)["http.response.status_code"] == 200
    assert attributes(run)["trellis.status"] == "success"
    assert attributes(model)["gen_ai.usage.input_tokens"] == 7
    assert attributes(model)["gen_ai.usage.output_tokens"] == 3
    assert attributes(model)["trellis.prompt_version"] == "2"


async def test_a_failing_model_call_marks_its_spans(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    async with trellis(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        thread = (await http.post("/threads", json={})).json()
        await http.post(
            f"/threads/{thread['thread_id']}/runs/wait",
            json={"assistant_id": "traced_chat", "input": {"text": "boom"}},
        )
    finished = spans.get_finished_spans()
    model = named(finished, "chat scripted-1")
    assert model.status.status_code.name == "ERROR"
    assert named(finished, "node answer").status.status_code.name == "ERROR"
    run = named(finished, "run traced_chat")
    assert attributes(run)["trellis.status"] == "error"
    # No client traceparent: the request starts the trace.
    request = named(finished, "POST /threads/{thread_id}/runs/wait")
    assert request.parent is None


async def test_off_by_default_the_run_still_keeps_the_clients_trace(settings: Settings) -> None:
    assert settings.otel_traces_exporter == "none"
    async with trellis(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert tracing.current() is None  # no tracer: nothing makes a span
        thread = (await http.post("/threads", json={})).json()
        created = await http.post(
            f"/threads/{thread['thread_id']}/runs",
            json={"assistant_id": "traced_chat", "input": {"text": "hi"}},
            headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01", "x-request-id": "r-1"},
        )
        assert created.status_code == 200, created.text
        ignored = await http.post(
            f"/threads/{thread['thread_id']}/runs",
            json={"assistant_id": "traced_chat", "input": {"text": "hi"}},
            headers={"traceparent": "not-a-traceparent"},
        )
    # Kept for a worker that traces, and for the run's log lines.
    assert created.json()["kwargs"]["traceparent"] == f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
    assert created.json()["kwargs"]["request_id"] == "r-1"
    assert "traceparent" not in ignored.json()["kwargs"]


async def test_the_exporter_comes_from_the_settings(settings: Settings) -> None:
    console = settings.model_copy(
        update={"otel_traces_exporter": "console", "otel_service_name": "trellis-under-test"}
    )
    watched = InMemorySpanExporter()
    async with trellis(console) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        configured = tracing.current()
        assert configured is not None
        # Beside the console exporter the settings chose: a copy of what it is sent.
        configured.provider.add_span_processor(SimpleSpanProcessor(watched))
        assert (await http.get("/ok")).status_code == 200
        observability = (await http.get("/info")).json()["trellis"]["observability"]
        assert observability["tracing"] == "console"
    assert tracing.current() is None  # the server's shutdown turned it off again
    ok = named(watched.get_finished_spans(), "GET /ok")
    assert ok.resource.attributes["service.name"] == "trellis-under-test"


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that keeps what it is sent."""

    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.received.append((self.path, dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


async def test_spans_go_to_the_otlp_endpoint_with_its_headers(settings: Settings) -> None:
    collector = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    serving = threading.Thread(target=collector.serve_forever, daemon=True)
    serving.start()
    _Collector.received.clear()
    otlp = settings.model_copy(
        update={
            "otel_traces_exporter": "otlp",
            "otel_exporter_otlp_endpoint": f"http://127.0.0.1:{collector.server_port}",
            "otel_exporter_otlp_headers": SecretStr("x-collector-key=k1"),
        }
    )
    try:
        async with trellis(otlp) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            thread = (await http.post("/threads", json={})).json()
            answer = await http.post(
                f"/threads/{thread['thread_id']}/runs/wait",
                json={"assistant_id": "traced_chat", "input": {"text": "hi"}},
            )
            assert answer.status_code == 200
        # The shutdown flushed the batch.
    finally:
        collector.shutdown()
        collector.server_close()
    assert _Collector.received
    names = set()
    for path, headers, body in _Collector.received:
        assert path == "/v1/traces"
        assert headers["x-collector-key"] == "k1"
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                names.update(span.name for span in scope.spans)
    assert {"POST /threads", "run traced_chat", "node answer", "chat scripted-1"} <= names
