"""Run telemetry: node steps and model calls, measured (and traced, when tracing is on) by a
LangChain callback handler attached to each run, and the tools layer's hooks
(`tools.telemetry`) turned into metrics.

A `RunTelemetry` handler is added to a run's callbacks when metrics are on; LangChain hands
it to every runnable the graph calls (nodes, chat models), so graphs need no code of their
own. Labels stay bounded: graph and node names, provider and model names, prompt versions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

from langchain_core.callbacks import BaseCallbackHandler, Callbacks
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphBubbleUp

from server.core import metrics, tracing
from tools import telemetry

if TYPE_CHECKING:
    from opentelemetry.trace import Span

_MAX_LABEL = 64
"""Longest label value kept (a model name is the client's choice in a graph)."""


def _label(value: object, default: str = "unknown") -> str:
    text = str(value) if value not in (None, "") else default
    return text[:_MAX_LABEL]


class RunTelemetry(BaseCallbackHandler):
    """Times the node steps and chat model calls of one run of graph `graph_id` (`measure`),
    and opens their spans under the run's `span` (when tracing is on)."""

    run_inline = True  # called in the run's own task: no thread hop per event
    raise_error = False

    def __init__(self, graph_id: str, *, measure: bool = True, span: Span | None = None) -> None:
        self.graph_id = graph_id
        self.measure = measure
        self._nodes: dict[uuid.UUID, tuple[str, float]] = {}
        self._models: dict[uuid.UUID, tuple[tuple[str, str, str], float]] = {}
        self._tracer = tracing.current() if span is not None else None
        self._run_span = span
        self._spans: dict[uuid.UUID, Span] = {}
        """Open spans, by LangChain run id."""
        self._under: dict[uuid.UUID, Span] = {}
        """For a runnable without a span of its own: the span its children go under."""

    # spans -----------------------------------------------------------------------------

    def _parent(self, parent_run_id: uuid.UUID | None) -> Span | None:
        if parent_run_id is None:
            return self._run_span
        return self._spans.get(parent_run_id) or self._under.get(parent_run_id) or self._run_span

    def _open(
        self,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None,
        name: str,
        attributes: dict[str, str | int | float | bool],
    ) -> None:
        assert self._tracer is not None
        self._spans[run_id] = self._tracer.start(
            name, parent=self._parent(parent_run_id), attributes=attributes
        )

    def _close(self, run_id: uuid.UUID, error: BaseException | None = None) -> None:
        self._under.pop(run_id, None)
        span = self._spans.pop(run_id, None)
        if span is not None:
            if error is not None and not isinstance(error, GraphBubbleUp):
                tracing.failed(span, error)
            span.end()

    # nodes ---------------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, object] | None,
        inputs: object,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        metadata: dict[str, object] | None = None,
        **kwargs: object,
    ) -> None:
        """A node's step starts when the runnable LangGraph names after the node starts."""
        node = (metadata or {}).get("langgraph_node")
        is_node = node is not None and kwargs.get("name") == node
        if is_node and self.measure:
            self._nodes[run_id] = (str(node), time.perf_counter())
        if self._tracer is not None:
            if is_node:
                step = (metadata or {}).get("langgraph_step")
                attributes: dict[str, str | int | float | bool] = {
                    "trellis.graph_id": self.graph_id,
                    "trellis.node": str(node),
                }
                if isinstance(step, int):
                    attributes["trellis.step"] = step
                self._open(run_id, parent_run_id, f"node {node}", attributes)
            elif (parent := self._parent(parent_run_id)) is not None:
                self._under[run_id] = parent

    def on_chain_end(self, outputs: object, *, run_id: uuid.UUID, **kwargs: object) -> None:
        """A node's step ended."""
        self._node_ended(run_id, "ok")
        if self._tracer is not None:
            self._close(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: object) -> None:
        """A node's step raised (an interrupt is an ending of its own)."""
        self._node_ended(run_id, "interrupt" if isinstance(error, GraphBubbleUp) else "error")
        if self._tracer is not None:
            self._close(run_id, error)

    def _node_ended(self, run_id: uuid.UUID, outcome: str) -> None:
        started = self._nodes.pop(run_id, None)
        if started is not None:
            node, began = started
            metrics.NODE_DURATION.labels(self.graph_id, _label(node), outcome).observe(
                time.perf_counter() - began
            )

    # chat models ---------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, object] | None,
        messages: list[list[BaseMessage]],
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        metadata: dict[str, object] | None = None,
        **kwargs: object,
    ) -> None:
        """A chat model call starts: its provider, model and prompt version from metadata."""
        meta: Mapping[str, object] = metadata or {}
        invocation = kwargs.get("invocation_params")
        params: Mapping[str, object] = invocation if isinstance(invocation, dict) else {}
        labels = (
            _label(meta.get("ls_provider")),
            _label(meta.get("ls_model_name") or params.get("model") or params.get("model_name")),
            _label(meta.get("prompt_version"), "none"),
        )
        if self.measure:
            self._models[run_id] = (labels, time.perf_counter())
        if self._tracer is not None:
            provider, model, version = labels
            self._open(
                run_id,
                parent_run_id,
                f"chat {model}",
                {
                    "gen_ai.system": provider,
                    "gen_ai.request.model": model,
                    "trellis.prompt": _label(meta.get("prompt"), "none"),
                    "trellis.prompt_version": version,
                },
            )

    def on_llm_end(self, response: LLMResult, *, run_id: uuid.UUID, **kwargs: object) -> None:
        """A model call answered: its latency and the tokens the provider reported."""
        tokens_in = tokens_out = 0
        for generations in response.generations:
            for generation in generations:
                message = generation.message if isinstance(generation, ChatGeneration) else None
                usage = message.usage_metadata if isinstance(message, AIMessage) else None
                if usage:
                    tokens_in += usage.get("input_tokens", 0)
                    tokens_out += usage.get("output_tokens", 0)
        if self._tracer is not None:
            if (span := self._spans.get(run_id)) is not None:
                span.set_attribute("gen_ai.usage.input_tokens", tokens_in)
                span.set_attribute("gen_ai.usage.output_tokens", tokens_out)
            self._close(run_id)
        started = self._models.pop(run_id, None)
        if started is None:
            return
        labels, began = started
        metrics.MODEL_DURATION.labels(*labels).observe(time.perf_counter() - began)
        metrics.MODEL_CALLS.labels(*labels, "ok").inc()
        if tokens_in:
            metrics.MODEL_TOKENS.labels(*labels, "in").inc(tokens_in)
        if tokens_out:
            metrics.MODEL_TOKENS.labels(*labels, "out").inc(tokens_out)

    def on_llm_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: object) -> None:
        """A model call failed."""
        if self._tracer is not None:
            self._close(run_id, error)
        started = self._models.pop(run_id, None)
        if started is not None:
            labels, began = started
            metrics.MODEL_DURATION.labels(*labels).observe(time.perf_counter() - began)
            metrics.MODEL_CALLS.labels(*labels, "error").inc()

    # tools -----------------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: dict[str, object] | None,
        input_str: str,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: object,
    ) -> None:
        """A tool call starts (a span only)."""
        if self._tracer is not None:
            name = _label(kwargs.get("name") or (serialized or {}).get("name"), "tool")
            self._open(run_id, parent_run_id, f"tool {name}", {"trellis.tool": name})

    def on_tool_end(self, output: object, *, run_id: uuid.UUID, **kwargs: object) -> None:
        """A tool call ended."""
        if self._tracer is not None:
            self._close(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: object) -> None:
        """A tool call raised."""
        if self._tracer is not None:
            self._close(run_id, error)


class ToolsTelemetry:
    """The tools layer's hooks as metrics (installed with `tools.telemetry.install`)."""

    def retried(self, operation: str) -> None:
        """Count a retry."""
        metrics.TOOL_RETRIES.labels(_label(operation)).inc()

    def fell_back(self, operation: str, fallback: str) -> None:
        """Count a fallback."""
        metrics.TOOL_FALLBACKS.labels(_label(operation), _label(fallback)).inc()

    def retrieved(self, collection: str, seconds: float, hits: int) -> None:
        """Time a retrieval and count its hits."""
        metrics.RETRIEVAL_DURATION.labels(_label(collection)).observe(seconds)
        metrics.RETRIEVAL_HITS.labels(_label(collection)).inc(hits)

    def cache_lookup(self, cache: str, result: telemetry.CacheResult) -> None:
        """Count a cache hit or miss."""
        metrics.CACHE_LOOKUPS.labels(_label(cache), result).inc()


def with_telemetry(
    config: RunnableConfig, graph_id: str, *, measure: bool = True, span: Span | None = None
) -> RunnableConfig:
    """`config` with a `RunTelemetry` handler added to its callbacks."""
    handler = RunTelemetry(graph_id, measure=measure, span=span)
    callbacks = config.get("callbacks")
    merged: Callbacks
    if callbacks is None:
        merged = [handler]
    elif isinstance(callbacks, list):
        merged = [*callbacks, handler]
    else:  # a callback manager
        merged = callbacks.copy()
        merged.add_handler(handler, inherit=True)
    return {**config, "callbacks": merged}
