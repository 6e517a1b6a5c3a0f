"""``OpenAIProvider``: the ``ModelProvider`` tasks on OpenAI-compatible chat completions.

``build_openai_provider`` builds it from plain config (``OpenAIConfig``). It drives
``ChatOpenAI``: structured output through tool calling (or ``json_schema``),
token streaming that LangGraph's ``messages`` stream mode picks up, tenacity
retries with jittered exponential backoff on transient errors only (429, 408,
5xx, timeouts, connection errors), a fallback model once the primary keeps
failing transiently, all within one total deadline per call (``ModelUnavailable``
then, naming the endpoint and its HTTP status or connection error),
``check_endpoint`` for a startup check, an optional temperature-0 response cache scoped by owner,
and one structured log record per call (``logging`` with ``extra=``; never
prompt text or secrets). LangSmith tracing is left to langchain's own
environment handling.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, TypeAlias, cast

import httpx
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field, SecretStr
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)
from typing_extensions import TypedDict

from prompts import Prompt, load_prompt
from tools import telemetry
from tools.cache import Cache, cache_key
from tools.models.provider import (
    Draft,
    ImageDescription,
    ImageLike,
    Judgement,
    ModelError,
    ModelOutputInvalid,
    ModelUnavailable,
    Next,
    PassageLike,
    PromptUse,
    QueryRewrite,
    RouteDecision,
    RouteFacts,
)
from tools.models.text import cited_refs

__all__ = [
    "DEFAULT_BASE_URL",
    "ModelRoles",
    "OpenAIConfig",
    "OpenAIProvider",
    "build_openai_provider",
    "check_endpoint",
    "endpoint_host",
    "is_transient",
]

logger = logging.getLogger("trellis.models")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""Where the ``openai`` client sends requests when no base URL is configured."""

Role = Literal["supervisor", "retriever", "vision", "critic"]
"""The agent a model call is made for; selects the configured model."""


@dataclass(frozen=True)
class ModelRoles:
    """Model name per agent role."""

    supervisor: str = "gpt-4o-mini"
    retriever: str = "gpt-4o-mini"
    vision: str = "gpt-4o-mini"
    critic: str = "gpt-4o-mini"

    def for_role(self, role: Role) -> str:
        """The model configured for ``role``."""
        return cast(str, getattr(self, role))


@dataclass(frozen=True)
class OpenAIConfig:
    """Plain configuration for ``OpenAIProvider``; built by the server from its settings."""

    api_key: str = field(repr=False)
    base_url: str | None = None
    models: ModelRoles = field(default_factory=ModelRoles)
    fallback_model: str | None = None
    timeout: float = 60.0
    max_retries: int = 3
    """Retries after the first attempt, per model, on transient errors only."""
    deadline: float = 90.0
    """Total seconds one call may take, every attempt of every model and the waits between."""
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    temperature: float = 0.0
    structured_method: Literal["function_calling", "json_schema"] = "function_calling"
    cache_ttl: int = 3600
    cache_shared_across_owners: bool = False


class _RouteChoice(BaseModel):
    """Choose the next agent."""

    next: Next = Field(description="The next agent, one of the allowed options.")
    reason: str = Field(description="One sentence explaining the choice.")


class _SearchQuery(BaseModel):
    """A search query for the document index."""

    query: str = Field(description="A short semantic search query.")
    keywords: list[str] = Field(default_factory=list, description="Up to six keywords.")


class _Grade(BaseModel):
    """A grade for a draft answer."""

    score: float = Field(ge=0.0, le=1.0, description="0.0 (bad) to 1.0 (fully supported).")
    reason: str = Field(description="One sentence explaining the grade.")


_TRANSIENT_STATUS = frozenset({408, 409, 429})

_NOSTREAM = "nostream"  # LangGraph's tag for calls kept out of the `messages` stream mode.


def is_transient(error: BaseException) -> bool:
    """Whether a failed call is worth retrying: 408/409/429/5xx, timeouts, lost connections."""
    if isinstance(error, openai.APIStatusError):
        return error.status_code in _TRANSIENT_STATUS or error.status_code >= 500
    return isinstance(
        error, openai.APITimeoutError | openai.APIConnectionError | httpx.TransportError
    )


def endpoint_host(base_url: str | None) -> str:
    """The host (and port) of an endpoint, without credentials, path or query."""
    parts = urllib.parse.urlsplit(base_url or DEFAULT_BASE_URL)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


def _endpoint(base_url: str | None) -> str:
    """The endpoint as an error may name it: without credentials or query."""
    parts = urllib.parse.urlsplit(base_url or DEFAULT_BASE_URL)
    return urllib.parse.urlunsplit(
        (parts.scheme, endpoint_host(base_url), parts.path.rstrip("/"), "", "")
    )


def _error_detail(body: object, api_key: str) -> str:
    """The message of an OpenAI-style error body, short, never echoing the key."""
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str) or not message.strip():
        return ""
    if api_key:
        message = message.replace(api_key, "***")
    return ": " + " ".join(message.split())[:200]


def _unavailable(error: BaseException, base_url: str | None, api_key: str) -> ModelUnavailable:
    """The error a run reports for a failed call: the endpoint and what it answered."""
    endpoint = _endpoint(base_url)
    if isinstance(error, openai.APIStatusError):
        reason = error.response.reason_phrase or ""
        detail = _error_detail(error.body if isinstance(error.body, dict) else None, api_key)
        if not detail and isinstance(error.body, dict):
            detail = _error_detail({"error": error.body}, api_key)
        return ModelUnavailable(
            f"the model endpoint {endpoint} answered HTTP {error.status_code} {reason}{detail}",
            base_url=endpoint,
            status_code=error.status_code,
        )
    # The client wraps the transport error (langchain's, then openai's): name the root.
    root = error
    while root.__cause__ is not None or (
        root.__context__ is not None and not root.__suppress_context__
    ):
        root = root.__cause__ or root.__context__  # type: ignore[assignment]
    named = f"{type(root).__name__}: {root}" if str(root) else type(root).__name__
    return ModelUnavailable(
        f"could not reach the model endpoint {endpoint}: {named}", base_url=endpoint
    )


async def check_endpoint(
    base_url: str | None,
    api_key: str,
    *,
    timeout: float = 5.0,  # noqa: ASYNC109 - one short request, not a retry loop
) -> str | None:
    """Ask an OpenAI-compatible endpoint for its models: None when it answers 2xx, else one
    line saying what went wrong (HTTP status and message, or the connection error)."""
    endpoint = _endpoint(base_url)
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(
                f"{endpoint}/models", headers={"authorization": f"Bearer {api_key}"}
            )
    except httpx.HTTPError as error:
        return f"could not reach the model endpoint {endpoint}: {type(error).__name__}: {error}"
    if response.is_success:
        return None
    try:
        body: object = response.json()
    except ValueError:
        body = None
    return (
        f"GET {endpoint}/models answered HTTP {response.status_code} "
        f"{response.reason_phrase}{_error_detail(body, api_key)}"
    )


def _usage(message: BaseMessage | None) -> dict[str, int]:
    usage = getattr(message, "usage_metadata", None) or {}
    return {
        "input_tokens": int(usage.get("input_tokens", 0)),
        "output_tokens": int(usage.get("output_tokens", 0)),
        "total_tokens": int(usage.get("total_tokens", 0)),
    }


def _status(error: BaseException) -> int | None:
    return error.status_code if isinstance(error, openai.APIStatusError) else None


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _render_passages(passages: Sequence[PassageLike]) -> str:
    # Angle brackets in the data are escaped so retrieved text cannot close the tag.
    return "\n".join(
        f'<passage n="{n}" document="{_escape(p.document_id)}" chunk="{p.chunk}">'
        f"{_escape(p.text)}</passage>"
        for n, p in enumerate(passages, start=1)
    )


def _facts_text(facts: Mapping[str, object]) -> str:
    return json.dumps(dict(facts), sort_keys=True, default=str)


def _prompt_metadata(prompt: Prompt) -> dict[str, str | int]:
    """Run metadata naming the prompt a model call used (traces and `messages` events show it)."""
    return {"prompt": prompt.name, "prompt_version": prompt.version}


_Result: TypeAlias = dict[str, object]
"""What one model call produced, as a JSON object (so it can be cached as JSON)."""

_Compute: TypeAlias = Callable[[str], Awaitable[tuple[_Result, BaseMessage | None]]]
"""One call to the named model: its result and the raw reply (for token usage)."""


class _StructuredReply(TypedDict):
    """What ``with_structured_output(..., include_raw=True)`` returns."""

    raw: BaseMessage
    parsed: BaseModel | None
    parsing_error: BaseException | None


class OpenAIProvider:
    """``ModelProvider`` backed by OpenAI-compatible chat completions through ``ChatOpenAI``."""

    name = "openai"

    def __init__(
        self,
        config: OpenAIConfig,
        *,
        cache: Cache | None = None,
        chat_factory: Callable[[str], BaseChatModel] | None = None,
    ) -> None:
        self._config = config
        self._cache = cache
        self._factory = chat_factory or self._default_chat
        self._chats: dict[str, BaseChatModel] = {}

    def _default_chat(self, model: str) -> BaseChatModel:
        return ChatOpenAI(
            model=model,
            api_key=SecretStr(self._config.api_key),
            base_url=self._config.base_url,
            timeout=self._config.timeout,
            max_retries=0,  # tenacity below is the one retry policy
            temperature=self._config.temperature,
            stream_usage=True,
        )

    def _chat(self, model: str) -> BaseChatModel:
        if model not in self._chats:
            self._chats[model] = self._factory(model)
        return self._chats[model]

    # ----------------------------------------------------------------- tasks

    async def route(
        self, facts: RouteFacts, *, model: str | None = None, owner: str | None = None
    ) -> RouteDecision:
        """Ask the supervisor model to choose among ``facts.allowed``."""
        prompt = load_prompt("supervisor")
        if len(facts.allowed) == 1:
            only = facts.allowed[0]
            reason = f"{only} is the only allowed option"
            return RouteDecision(only, reason, PromptUse.of(prompt), "none")
        chosen_model = model or self._config.models.supervisor
        facts_text = json.dumps(
            {k: v for k, v in asdict(facts).items() if k not in ("question", "allowed")}
        )
        system, user = prompt.split(
            question=_escape(facts.question), facts=facts_text, allowed=", ".join(facts.allowed)
        )
        inputs = {"system": system, "user": user}
        data = await self._structured(
            "supervisor", prompt, chosen_model, _RouteChoice, inputs, owner
        )
        choice = _RouteChoice.model_validate(data)
        if choice.next not in facts.allowed:
            fallback = facts.allowed[0]
            reason = f"model chose {choice.next}, which is not allowed; using {fallback}"
            return RouteDecision(fallback, reason, PromptUse.of(prompt), chosen_model)
        return RouteDecision(choice.next, choice.reason, PromptUse.of(prompt), chosen_model)

    async def rewrite_query(
        self, question: str, *, model: str | None = None, owner: str | None = None
    ) -> QueryRewrite:
        """Ask the retriever model for a search query."""
        prompt = load_prompt("retriever_rewrite")
        chosen_model = model or self._config.models.retriever
        system, user = prompt.split(question=_escape(question))
        inputs = {"system": system, "user": user}
        data = await self._structured(
            "retriever", prompt, chosen_model, _SearchQuery, inputs, owner
        )
        parsed = _SearchQuery.model_validate(data)
        query = parsed.query.strip() or question
        return QueryRewrite(query, tuple(parsed.keywords[:6]), PromptUse.of(prompt), chosen_model)

    async def draft_answer(
        self,
        question: str,
        passages: Sequence[PassageLike],
        *,
        feedback: str | None = None,
        model: str | None = None,
        owner: str | None = None,
    ) -> Draft:
        """Stream a cited answer from the passages; ``[n]`` markers become citations."""
        prompt = load_prompt("retriever_answer")
        chosen_model = model or self._config.models.retriever
        note = f"\nA reviewer asked for a better draft: {_escape(feedback)}" if feedback else ""
        system, user = prompt.split(
            question=_escape(question), passages=_render_passages(passages), feedback=note
        )
        messages: list[BaseMessage] = [SystemMessage(system), HumanMessage(user)]
        text, message_id, used = await self._text(
            "retriever", prompt, chosen_model, messages, owner
        )
        return Draft(text, cited_refs(text, passages), PromptUse.of(prompt), used, message_id)

    async def describe_image(
        self,
        question: str,
        image: ImageLike | None,
        ocr_text: str,
        facts: Mapping[str, object],
        *,
        model: str | None = None,
        owner: str | None = None,
    ) -> ImageDescription:
        """Stream an answer about the image, sending the image itself when there is one."""
        prompt = load_prompt("vision")
        chosen_model = model or self._config.models.vision
        system, user = prompt.split(
            question=_escape(question), ocr_text=_escape(ocr_text), facts=_facts_text(facts)
        )
        content: list[str | dict[str, object]] = [{"type": "text", "text": user}]
        if image is not None:
            content.append({"type": "image_url", "image_url": {"url": image.data_url}})
        messages: list[BaseMessage] = [SystemMessage(system), HumanMessage(content=content)]
        text, message_id, used = await self._text("vision", prompt, chosen_model, messages, owner)
        return ImageDescription(text, PromptUse.of(prompt), used, message_id)

    async def judge(
        self,
        question: str,
        draft: str,
        passages: Sequence[PassageLike],
        *,
        model: str | None = None,
        owner: str | None = None,
    ) -> Judgement:
        """Ask the critic model for a graded judgement."""
        prompt = load_prompt("critic_judge")
        chosen_model = model or self._config.models.critic
        system, user = prompt.split(
            question=_escape(question), draft=_escape(draft), passages=_render_passages(passages)
        )
        inputs = {"system": system, "user": user}
        data = await self._structured("critic", prompt, chosen_model, _Grade, inputs, owner)
        grade = _Grade.model_validate(data)
        return Judgement(grade.score, grade.reason, PromptUse.of(prompt), chosen_model)

    # ----------------------------------------------------------------- plumbing

    async def _structured(
        self,
        role: Role,
        prompt: Prompt,
        model: str,
        schema: type[BaseModel],
        inputs: dict[str, str],
        owner: str | None,
    ) -> _Result:
        async def compute(chosen: str) -> tuple[_Result, BaseMessage | None]:
            runnable = self._chat(chosen).with_structured_output(
                schema, method=self._config.structured_method, include_raw=True
            )
            messages = [SystemMessage(inputs["system"]), HumanMessage(inputs["user"])]
            config: RunnableConfig = {"tags": [_NOSTREAM], "metadata": _prompt_metadata(prompt)}
            out = cast(_StructuredReply, await runnable.ainvoke(messages, config=config))
            parsed = out.get("parsed")
            if out.get("parsing_error") is not None or not isinstance(parsed, BaseModel):
                raise ModelOutputInvalid(
                    f"{chosen} did not return a valid {schema.__name__}: {out.get('parsing_error')}"
                )
            return parsed.model_dump(mode="json"), out.get("raw")

        key_inputs = {"schema": schema.__name__, **inputs}
        result, _ = await self._cached(role, prompt, model, key_inputs, owner, compute)
        return result

    async def _text(
        self,
        role: Role,
        prompt: Prompt,
        model: str,
        messages: list[BaseMessage],
        owner: str | None,
    ) -> tuple[str, str | None, str]:
        async def compute(chosen: str) -> tuple[_Result, BaseMessage | None]:
            reply = await self._chat(chosen).ainvoke(
                messages, config={"metadata": _prompt_metadata(prompt)}
            )
            if not isinstance(reply, AIMessage):
                raise ModelOutputInvalid(f"{chosen} returned {type(reply).__name__}")
            return {"text": reply.text, "id": reply.id, "model": chosen}, reply

        key_inputs = {"messages": [m.model_dump(mode="json") for m in messages]}
        result, used = await self._cached(role, prompt, model, key_inputs, owner, compute)
        return str(result["text"]), cast("str | None", result.get("id")), used

    async def _cached(
        self,
        role: Role,
        prompt: Prompt,
        model: str,
        inputs: Mapping[str, object],
        owner: str | None,
        compute: _Compute,
    ) -> tuple[_Result, str]:
        key = self._cache_key(prompt, model, inputs, owner)
        if key is not None and self._cache is not None:
            hit = await self._cache.get(key)
            telemetry.current().cache_lookup("chat", "miss" if hit is None else "hit")
            if hit is not None:
                self._log(role, model, prompt, 0.0, None, attempt=0, outcome="cache_hit")
                return cast(_Result, json.loads(hit)), model
        result, used = await self._with_fallback(role, prompt, model, compute)
        if key is not None and self._cache is not None:
            await self._cache.set(key, json.dumps(result).encode(), self._config.cache_ttl)
        return result, used

    def _cache_key(
        self, prompt: Prompt, model: str, inputs: Mapping[str, object], owner: str | None
    ) -> str | None:
        if self._cache is None or self._config.temperature != 0:
            return None
        scope = None if self._config.cache_shared_across_owners else (owner or "")
        return cache_key(
            "chat",
            model=model,
            prompt=prompt.name,
            prompt_version=prompt.version,
            params={
                "temperature": self._config.temperature,
                "method": self._config.structured_method,
            },
            inputs=inputs,
            owner=scope,
        )

    async def _with_fallback(
        self,
        role: Role,
        prompt: Prompt,
        model: str,
        compute: _Compute,
    ) -> tuple[_Result, str]:
        candidates = [model]
        if self._config.fallback_model and self._config.fallback_model != model:
            candidates.append(self._config.fallback_model)
        deadline = time.monotonic() + self._config.deadline
        last: BaseException | None = None
        for chosen in candidates:
            if time.monotonic() >= deadline and last is not None:
                break
            if last is not None:
                telemetry.current().fell_back("model", "fallback_model")
            try:
                return await self._retrying(role, prompt, chosen, compute, deadline), chosen
            except ModelError:
                raise
            except Exception as error:
                if not (is_transient(error) or isinstance(error, TimeoutError)):
                    if isinstance(error, openai.APIError):
                        raise _unavailable(
                            error, self._config.base_url, self._config.api_key
                        ) from error
                    raise
                last = error
                logger.warning(
                    "model %s exhausted its retries",
                    chosen,
                    extra={"event": "model_fallback", "role": role, "model": chosen},
                )
        assert last is not None
        if isinstance(last, TimeoutError):
            endpoint = _endpoint(self._config.base_url)
            raise ModelUnavailable(
                f"the model endpoint {endpoint} did not answer within the call's deadline "
                f"of {self._config.deadline:g} s",
                base_url=endpoint,
            ) from last
        raise _unavailable(last, self._config.base_url, self._config.api_key) from last

    async def _retrying(
        self,
        role: Role,
        prompt: Prompt,
        model: str,
        compute: _Compute,
        deadline: float,
    ) -> _Result:
        retrying = AsyncRetrying(
            # No new attempt once its wait would end past the deadline.
            stop=stop_after_attempt(self._config.max_retries + 1)
            | stop_before_delay(max(0.0, deadline - time.monotonic())),
            wait=wait_random_exponential(
                multiplier=self._config.backoff_initial, max=self._config.backoff_max
            ),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                if number > 1:
                    telemetry.current().retried("model")
                started = time.perf_counter()
                try:
                    async with asyncio.timeout_at(_loop_deadline(deadline)):
                        result, raw = await compute(model)
                except Exception as error:
                    elapsed = (time.perf_counter() - started) * 1000
                    self._log(role, model, prompt, elapsed, None, number, "error", error)
                    raise
                elapsed = (time.perf_counter() - started) * 1000
                self._log(role, model, prompt, elapsed, raw, number, "ok")
                return result
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _log(
        self,
        role: Role,
        model: str,
        prompt: Prompt,
        latency_ms: float,
        raw: BaseMessage | None,
        attempt: int,
        outcome: str,
        error: BaseException | None = None,
    ) -> None:
        extra: dict[str, object] = {
            "event": "model_call",
            "provider": self.name,
            "role": role,
            "model": model,
            "prompt": prompt.name,
            "prompt_version": prompt.version,
            "latency_ms": round(latency_ms, 1),
            "attempt": attempt,
            "outcome": outcome,
            **_usage(raw),
        }
        if error is not None:
            extra["error"] = type(error).__name__
            extra["status_code"] = _status(error)
            extra["transient"] = is_transient(error)
        level = logging.INFO if error is None else logging.WARNING
        logger.log(level, "model call %s %s", model, outcome, extra=extra)


def _loop_deadline(deadline: float) -> float:
    """A ``time.monotonic()`` deadline on the running loop's clock."""
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())


def build_openai_provider(config: OpenAIConfig, *, cache: Cache | None = None) -> OpenAIProvider:
    """Build the OpenAI-backed provider from plain configuration."""
    return OpenAIProvider(config, cache=cache)
