"""OpenTelemetry traces (the optional `otel` extra): request → run → node → model/tool spans.

Off by default (`OTEL_TRACES_EXPORTER=none`) and then free: `current()` is None, and every
caller checks that before making anything. On, each process has one `Tracing`: the HTTP
middleware opens a request span (a child of the client's `traceparent`), a run created by
the request keeps that span's `traceparent` in its kwargs, the executor opens the run's span
under it (in whichever process executes the run), and the run's callback handler
(`server.runs.run_telemetry`) opens node, model and tool spans under that.

The exporter comes from the settings (`OTEL_TRACES_EXPORTER`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`), read like every other setting.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, SpanKind

    from server.core.settings import Settings

__all__ = ["Tracing", "available", "configure", "current", "describe", "use"]

_INSTALL_HINT = "install the `otel` extra: pip install 'trellis[otel]' (or uv sync --extra otel)"


def available() -> bool:
    """Whether the OpenTelemetry SDK is installed (the `otel` extra)."""
    return importlib.util.find_spec("opentelemetry.sdk") is not None


class Tracing:
    """Opens this process' spans, with `provider`'s exporter."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace import SpanKind, set_span_in_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer = provider.get_tracer("trellis")
        self._propagator = TraceContextTextMapPropagator()
        self._in_context = set_span_in_context
        self.server: SpanKind = SpanKind.SERVER
        self.client: SpanKind = SpanKind.CLIENT
        self.internal: SpanKind = SpanKind.INTERNAL

    def extract(self, traceparent: str | None) -> Context | None:
        """The context a W3C `traceparent` names (None without one)."""
        if not traceparent:
            return None
        return self._propagator.extract({"traceparent": traceparent})

    def traceparent(self, span: Span) -> str | None:
        """The W3C `traceparent` of `span`: what a run keeps to join its request's trace."""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._in_context(span))
        return carrier.get("traceparent")

    def start(
        self,
        name: str,
        *,
        parent: Span | Context | None = None,
        kind: SpanKind | None = None,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> Span:
        """Open a span under `parent` (a span, a context, or none: a new trace)."""
        from opentelemetry.trace import Span as SpanType

        context = self._in_context(parent) if isinstance(parent, SpanType) else parent
        return self.tracer.start_span(
            name, context=context, kind=kind or self.internal, attributes=attributes
        )

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        *,
        parent: Span | Context | None = None,
        kind: SpanKind | None = None,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> Iterator[Span]:
        """`start` as a context manager: an exception is recorded, then the span ends."""
        span = self.start(name, parent=parent, kind=kind, attributes=attributes)
        try:
            yield span
        except BaseException as error:
            failed(span, error)
            raise
        finally:
            span.end()


def failed(span: Span, error: BaseException) -> None:
    """Mark `span` as failed with `error` (recorded as an exception event)."""
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:200]))


_current: Tracing | None = None


def current() -> Tracing | None:
    """This process' tracing, or None when it is off."""
    return _current


def use(provider: TracerProvider) -> Callable[[], None]:
    """Trace with `provider` (tests: one with an in-memory exporter); returns the undo."""
    global _current
    previous, _current = _current, Tracing(provider)

    def undo() -> None:
        global _current
        _current = previous

    return undo


def _headers(raw: str | None) -> dict[str, str]:
    pairs = (item.partition("=") for item in (raw or "").split(",") if "=" in item)
    return {key.strip(): value.strip() for key, _, value in pairs}


def configure(settings: Settings) -> Callable[[], None]:
    """Turn tracing on as the settings say (nothing when `OTEL_TRACES_EXPORTER=none`);
    returns the shutdown, which flushes the spans not exported yet."""
    if settings.otel_traces_exporter == "none":
        return lambda: None
    if not available():
        raise RuntimeError(
            f"OTEL_TRACES_EXPORTER={settings.otel_traces_exporter} needs OpenTelemetry: "
            + _INSTALL_HINT
        )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name})
    )
    if settings.otel_traces_exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        headers = settings.otel_exporter_otlp_headers
        exporter = OTLPSpanExporter(
            endpoint=settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces",
            headers=_headers(headers.get_secret_value() if headers else None),
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
    undo = use(provider)

    def shutdown() -> None:
        undo()
        provider.shutdown()

    return shutdown


def describe(settings: Settings) -> tuple[bool, str, str | None]:
    """For `trellis doctor`: whether tracing is usable as configured, what it does, and what
    to do when it is not."""
    exporter = settings.otel_traces_exporter
    if exporter == "none":
        hint = "" if available() else f"; to trace, {_INSTALL_HINT}"
        return True, f"off (set OTEL_TRACES_EXPORTER=otlp or console to trace){hint}", None
    if not available():
        return False, f"OTEL_TRACES_EXPORTER={exporter} but OpenTelemetry is missing", _INSTALL_HINT
    if exporter == "console":
        return True, f"spans printed on stdout (service {settings.otel_service_name})", None
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    if importlib.util.find_spec("opentelemetry.exporter.otlp.proto.http") is None:
        return False, "OTEL_TRACES_EXPORTER=otlp but the OTLP exporter is missing", _INSTALL_HINT
    return True, f"OTLP/HTTP to {endpoint} (service {settings.otel_service_name})", None
