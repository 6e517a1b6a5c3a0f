"""Model access for the built-in agents, behind the task-level ``ModelProvider`` protocol.

This module owns every call to a chat model. Agents ask for tasks, not chats:
``route``, ``rewrite_query``, ``draft_answer``, ``describe_image`` and ``judge``
each return a typed result that records the prompt (name and version) it used.

Two providers implement the protocol:

- ``OpenAIProvider`` (built by ``build_openai_provider`` from plain config) drives
  ``ChatOpenAI``: structured output through tool calling (or ``json_schema``),
  token streaming that LangGraph's ``messages`` stream mode picks up, tenacity
  retries with jittered exponential backoff on transient errors only (429, 408,
  5xx, timeouts, connection errors), a fallback model once the primary keeps
  failing transiently, an optional temperature-0 response cache scoped by owner,
  and one structured log record per call (``logging`` with ``extra=``; never
  prompt text or secrets). LangSmith tracing is left to langchain's own
  environment handling.
- ``OfflineProvider`` does the same tasks deterministically without a network:
  rule-based routing, keyword query rewriting, extractive answers ranked by
  embedding similarity, image descriptions from OCR text and image facts, and a
  graded judgement from lexical and embedding overlap.

Errors::

    ModelError                 base class
    ├── ModelOutputInvalid     the model answered, but not in the requested shape
    └── (openai.APIError ...)  transport/status errors propagate unchanged once
                               retries and the fallback are exhausted
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, TypeVar, cast, get_args

import httpx
import numpy as np
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field, SecretStr
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from prompts import Prompt, load_prompt
from tools.cache import Cache, cache_key
from tools.embeddings import Embedder

__all__ = [
    "NEXT_OPTIONS",
    "CitedRef",
    "Draft",
    "ImageDescription",
    "ImageLike",
    "Judgement",
    "ModelError",
    "ModelOutputInvalid",
    "ModelProvider",
    "ModelRoles",
    "Next",
    "OfflineProvider",
    "OpenAIConfig",
    "OpenAIProvider",
    "PassageLike",
    "PromptUse",
    "QueryRewrite",
    "RouteDecision",
    "RouteFacts",
    "build_openai_provider",
    "cited_refs",
    "content_words",
    "cosine_matrix",
    "is_transient",
    "split_sentences",
    "strip_citations",
]

logger = logging.getLogger("trellis.models")

Next = Literal["retriever", "vision", "critic", "finish"]
"""Where the supervisor can hand off to; ``finish`` ends the turn."""

NEXT_OPTIONS: tuple[Next, ...] = get_args(Next)

Role = Literal["supervisor", "retriever", "vision", "critic"]
"""The agent a model call is made for; selects the configured model."""

T = TypeVar("T")


class ModelError(Exception):
    """Base class for model-layer failures that are not transport errors."""


class ModelOutputInvalid(ModelError):
    """Raised when a model's reply cannot be parsed into the requested result; not retried."""


# --------------------------------------------------------------------------- inputs


class PassageLike(Protocol):
    """What a provider reads from a retrieved passage (``tools.retrieval.Passage`` fits)."""

    @property
    def document_id(self) -> str: ...
    @property
    def chunk(self) -> int: ...
    @property
    def text(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def source(self) -> str: ...


class ImageLike(Protocol):
    """What a provider reads from a prepared image (``tools.images.PreparedImage`` fits)."""

    @property
    def data_url(self) -> str: ...


@dataclass(frozen=True)
class RouteFacts:
    """What the supervisor knows about the turn when it asks where to go next."""

    question: str
    has_image: bool
    image_done: bool
    has_draft: bool
    draft_source: str | None
    verdict: str | None
    revisions: int
    allowed: tuple[Next, ...]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PromptUse:
    """The prompt a result came from; ``version`` 0 means no template was involved."""

    name: str
    version: int


@dataclass(frozen=True)
class RouteDecision:
    """The supervisor's choice of the next agent."""

    next: Next
    reason: str
    prompt: PromptUse
    model: str


@dataclass(frozen=True)
class QueryRewrite:
    """A search query derived from the user's question."""

    query: str
    keywords: tuple[str, ...]
    prompt: PromptUse
    model: str


@dataclass(frozen=True)
class CitedRef:
    """A passage a draft cites; ``marker`` is the ``[n]`` number used in the text."""

    marker: int
    document_id: str
    chunk: int
    score: float
    source: str


@dataclass(frozen=True)
class Draft:
    """A drafted answer with the passages it cites."""

    text: str
    citations: tuple[CitedRef, ...]
    prompt: PromptUse
    model: str
    message_id: str | None = None
    """Id of the streamed chat message, so the final answer message reuses it."""


@dataclass(frozen=True)
class ImageDescription:
    """A drafted answer about an image."""

    text: str
    prompt: PromptUse
    model: str
    message_id: str | None = None


@dataclass(frozen=True)
class Judgement:
    """A graded opinion on a draft: ``score`` in [0, 1]."""

    score: float
    reason: str
    prompt: PromptUse
    model: str


class ModelProvider(Protocol):
    """Task-level model access used by the agents.

    ``model`` overrides the provider's configured model for the call's role;
    ``owner`` scopes the response cache.
    """

    @property
    def name(self) -> str:
        """``"offline"`` or ``"openai"``; reported in streams and ``/info``."""
        ...

    async def route(
        self, facts: RouteFacts, *, model: str | None = None, owner: str | None = None
    ) -> RouteDecision: ...

    async def rewrite_query(
        self, question: str, *, model: str | None = None, owner: str | None = None
    ) -> QueryRewrite: ...

    async def draft_answer(
        self,
        question: str,
        passages: Sequence[PassageLike],
        *,
        feedback: str | None = None,
        model: str | None = None,
        owner: str | None = None,
    ) -> Draft: ...

    async def describe_image(
        self,
        question: str,
        image: ImageLike | None,
        ocr_text: str,
        facts: Mapping[str, Any],
        *,
        model: str | None = None,
        owner: str | None = None,
    ) -> ImageDescription: ...

    async def judge(
        self,
        question: str,
        draft: str,
        passages: Sequence[PassageLike],
        *,
        model: str | None = None,
        owner: str | None = None,
    ) -> Judgement: ...


# --------------------------------------------------------------------------- text helpers

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_CITATION = re.compile(r"\s*\[(\d+)\]")
_WORD = re.compile(r"[a-z0-9][a-z0-9'\-]*")
_MARKDOWN_PREFIX = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)")

_STOP_WORDS_TEXT = """
    a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each else ever few for from further get gets got had hadn't
    has hasn't have haven't having he her here hers herself him himself his how however i if in
    into is isn't it it's its itself just let let's like made make many may me might more most
    much must mustn't my myself need no nor not now of off on once one only or other ought our
    ours ourselves out over own please same shall she should shouldn't so some such tell than
    that that's the their theirs them themselves then there there's these they this those
    through to too under until up upon us use used using very via was wasn't we were weren't
    what what's when where which while who whom whose why will with within without won't would
    wouldn't yes yet you your yours yourself yourselves explain describe say says said show
    shows give know
"""
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, one paragraph or markdown line at a time."""
    sentences: list[str] = []
    for line in re.split(r"\n\s*\n|\n(?=\s*(?:#|[-*+]\s|\d+[.)]\s))", text):
        line = _MARKDOWN_PREFIX.sub("", " ".join(line.split()))
        if not line:
            continue
        sentences.extend(part.strip() for part in _SENTENCE_END.split(line) if part.strip())
    return sentences


def strip_citations(text: str) -> str:
    """Remove ``[n]`` citation markers."""
    return _CITATION.sub("", text).strip()


def content_words(text: str) -> list[str]:
    """Lower-cased words of ``text`` without stop words, in order, without repeats."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        word = word.strip("'-")
        if len(word) > 1 and word not in _STOP_WORDS:
            seen.setdefault(word, None)
    return list(seen)


def cosine_matrix(left: Sequence[Sequence[float]], right: Sequence[Sequence[float]]) -> Any:
    """Cosine similarities between two lists of L2-normalised vectors (rows x columns)."""
    if not left or not right:
        return np.zeros((len(left), len(right)))
    return np.asarray(left, dtype=np.float64) @ np.asarray(right, dtype=np.float64).T


def _render_passages(passages: Sequence[PassageLike]) -> str:
    # Angle brackets in the data are escaped so retrieved text cannot close the tag.
    return "\n".join(
        f'<passage n="{n}" document="{_escape(p.document_id)}" chunk="{p.chunk}">'
        f"{_escape(p.text)}</passage>"
        for n, p in enumerate(passages, start=1)
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cited_refs(text: str, passages: Sequence[PassageLike]) -> tuple[CitedRef, ...]:
    """The passages a text cites with ``[n]`` markers (1-based), first mention order."""
    refs: dict[int, CitedRef] = {}
    for match in _CITATION.finditer(text):
        marker = int(match.group(1))
        if 1 <= marker <= len(passages) and marker not in refs:
            p = passages[marker - 1]
            refs[marker] = CitedRef(marker, p.document_id, p.chunk, p.score, p.source)
    return tuple(sorted(refs.values(), key=lambda ref: ref.marker))


def _facts_text(facts: Mapping[str, Any]) -> str:
    return json.dumps(dict(facts), sort_keys=True, default=str)


def _prompt_metadata(prompt: Prompt) -> dict[str, Any]:
    """Run metadata naming the prompt a model call used (traces and `messages` events show it)."""
    return {"prompt": prompt.name, "prompt_version": prompt.version}


def _use(prompt: Prompt) -> PromptUse:
    return PromptUse(prompt.name, prompt.version)


# --------------------------------------------------------------------------- offline


_NO_ANSWER = "The documents I searched do not cover this question."
_NO_TEXT = "No text was found in the image."


class OfflineProvider:
    """Deterministic provider that works without any network access.

    It still records the prompt each task corresponds to, so traces look the
    same whichever provider ran.
    """

    name = "offline"

    def __init__(
        self, embedder: Embedder, *, max_answer_sentences: int = 3, min_similarity: float = 0.2
    ) -> None:
        self._embedder = embedder
        self._max_sentences = max_answer_sentences
        self._min_similarity = min_similarity

    async def route(
        self, facts: RouteFacts, *, model: str | None = None, owner: str | None = None
    ) -> RouteDecision:
        """Route from the turn's content: image → vision, draft → critic, question → retriever."""
        prompt = _use(load_prompt("supervisor"))
        choice: Next
        if facts.verdict in ("accepted", "approved", "edited", "rejected"):
            choice, reason = "finish", f"the critic's verdict is {facts.verdict}"
        elif facts.has_image and not facts.image_done:
            choice, reason = "vision", "the question carries an image"
        elif facts.verdict == "revise":
            choice = "vision" if facts.draft_source == "vision" else "retriever"
            reason = f"the critic asked for revision {facts.revisions}"
        elif facts.has_draft:
            choice, reason = "critic", "a draft exists and has not been checked"
        else:
            choice, reason = "retriever", "the question needs grounding in the documents"
        if choice not in facts.allowed:
            choice, reason = facts.allowed[0], f"{reason}; only {facts.allowed[0]} is allowed"
        return RouteDecision(choice, reason, prompt, "offline-rules")

    async def rewrite_query(
        self, question: str, *, model: str | None = None, owner: str | None = None
    ) -> QueryRewrite:
        """Keep the question's content words, in order."""
        words = content_words(question)
        query = " ".join(words) if words else question.strip()
        return QueryRewrite(
            query, tuple(words[:6]), _use(load_prompt("retriever_rewrite")), "offline-keywords"
        )

    async def draft_answer(
        self,
        question: str,
        passages: Sequence[PassageLike],
        *,
        feedback: str | None = None,
        model: str | None = None,
        owner: str | None = None,
    ) -> Draft:
        """Answer with the retrieved sentences closest to the question, citing their passages."""
        prompt = _use(load_prompt("retriever_answer"))
        candidates = [
            (index, position, sentence)
            for index, passage in enumerate(passages)
            for position, sentence in enumerate(split_sentences(passage.text))
            if len(content_words(sentence)) >= 2
        ]
        if not candidates:
            return Draft(_NO_ANSWER, (), prompt, "offline-extractive")
        vectors = await self._embedder.embed([question] + [c[2] for c in candidates])
        similarity = cosine_matrix(vectors[:1], vectors[1:])[0]
        question_words = set(content_words(question))
        scored = []
        for (index, position, sentence), cos in zip(candidates, similarity, strict=True):
            overlap = len(question_words & set(content_words(sentence)))
            scored.append((float(cos) + 0.02 * overlap, index, position, sentence))
        scored.sort(key=lambda item: (-item[0], item[1], item[2]))
        best = scored[0][0]
        if best < self._min_similarity:
            return Draft(_NO_ANSWER, (), prompt, "offline-extractive")
        chosen = [s for s in scored if s[0] >= max(self._min_similarity, best - 0.15)]
        chosen = chosen[: self._max_sentences]  # best first: the answer leads with its best match
        text = " ".join(
            f"{_terminated(sentence)} [{index + 1}]" for _, index, _, sentence in chosen
        )
        return Draft(text, cited_refs(text, passages), prompt, "offline-extractive")

    async def describe_image(
        self,
        question: str,
        image: ImageLike | None,
        ocr_text: str,
        facts: Mapping[str, Any],
        *,
        model: str | None = None,
        owner: str | None = None,
    ) -> ImageDescription:
        """Describe the image from its OCR text and measured facts."""
        ocr = " ".join(ocr_text.split())
        parts = [f'The image contains the text: "{ocr}".' if ocr else _NO_TEXT]
        width, height = facts.get("width"), facts.get("height")
        fmt = facts.get("original_format") or facts.get("format")
        if width and height:
            parts.append(f"It is a {width}x{height} {fmt or ''} image.".replace("  ", " "))
        return ImageDescription(" ".join(parts), _use(load_prompt("vision")), "offline-ocr")

    async def judge(
        self,
        question: str,
        draft: str,
        passages: Sequence[PassageLike],
        *,
        model: str | None = None,
        owner: str | None = None,
    ) -> Judgement:
        """Grade from keyword coverage, evidence support and question-draft similarity.

        score = 0.4 * support + 0.3 * coverage + 0.3 * similarity, where support is the
        share of the draft's content words found in the evidence, coverage the share
        of the question's content words the draft or evidence addresses, and
        similarity the cosine between question and draft embeddings (floored at 0).
        """
        prompt = _use(load_prompt("critic_judge"))
        plain = strip_citations(draft)
        draft_words = set(content_words(plain))
        evidence_words = set(content_words(" ".join(p.text for p in passages)))
        question_words = set(content_words(question))
        if not draft_words or not evidence_words:
            return Judgement(0.0, "the draft has no evidence to stand on", prompt, "offline-judge")
        support = len(draft_words & evidence_words) / len(draft_words)
        coverage = (
            len(question_words & (draft_words | evidence_words)) / len(question_words)
            if question_words
            else 0.0
        )
        vectors = await self._embedder.embed([question, plain])
        similarity = max(0.0, float(cosine_matrix(vectors[:1], vectors[1:])[0][0]))
        score = min(1.0, max(0.0, 0.4 * support + 0.3 * coverage + 0.3 * similarity))
        reason = (
            f"support {support:.2f} of draft words in evidence, "
            f"coverage {coverage:.2f} of question words, similarity {similarity:.2f}"
        )
        return Judgement(round(score, 4), reason, prompt, "offline-judge")


def _terminated(sentence: str) -> str:
    return sentence if sentence[-1:] in ".!?" else sentence + "."


# --------------------------------------------------------------------------- openai


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


def _usage(message: BaseMessage | None) -> dict[str, int]:
    usage = getattr(message, "usage_metadata", None) or {}
    return {
        "input_tokens": int(usage.get("input_tokens", 0)),
        "output_tokens": int(usage.get("output_tokens", 0)),
        "total_tokens": int(usage.get("total_tokens", 0)),
    }


def _status(error: BaseException) -> int | None:
    return error.status_code if isinstance(error, openai.APIStatusError) else None


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
            return RouteDecision(only, f"{only} is the only allowed option", _use(prompt), "none")
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
            return RouteDecision(fallback, reason, _use(prompt), chosen_model)
        return RouteDecision(choice.next, choice.reason, _use(prompt), chosen_model)

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
        return QueryRewrite(query, tuple(parsed.keywords[:6]), _use(prompt), chosen_model)

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
        return Draft(text, cited_refs(text, passages), _use(prompt), used, message_id)

    async def describe_image(
        self,
        question: str,
        image: ImageLike | None,
        ocr_text: str,
        facts: Mapping[str, Any],
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
        content: list[str | dict[str, Any]] = [{"type": "text", "text": user}]
        if image is not None:
            content.append({"type": "image_url", "image_url": {"url": image.data_url}})
        messages: list[BaseMessage] = [SystemMessage(system), HumanMessage(content=content)]
        text, message_id, used = await self._text("vision", prompt, chosen_model, messages, owner)
        return ImageDescription(text, _use(prompt), used, message_id)

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
        return Judgement(grade.score, grade.reason, _use(prompt), chosen_model)

    # ----------------------------------------------------------------- plumbing

    async def _structured(
        self,
        role: Role,
        prompt: Prompt,
        model: str,
        schema: type[BaseModel],
        inputs: dict[str, str],
        owner: str | None,
    ) -> dict[str, Any]:
        async def compute(chosen: str) -> tuple[dict[str, Any], BaseMessage | None]:
            runnable = self._chat(chosen).with_structured_output(
                schema, method=self._config.structured_method, include_raw=True
            )
            messages = [SystemMessage(inputs["system"]), HumanMessage(inputs["user"])]
            config: RunnableConfig = {"tags": [_NOSTREAM], "metadata": _prompt_metadata(prompt)}
            out = cast(dict[str, Any], await runnable.ainvoke(messages, config=config))
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
        async def compute(chosen: str) -> tuple[dict[str, Any], BaseMessage | None]:
            reply = await self._chat(chosen).ainvoke(
                messages, config={"metadata": _prompt_metadata(prompt)}
            )
            if not isinstance(reply, AIMessage):
                raise ModelOutputInvalid(f"{chosen} returned {type(reply).__name__}")
            return {"text": reply.text, "id": reply.id, "model": chosen}, reply

        key_inputs = {"messages": [m.model_dump(mode="json") for m in messages]}
        result, used = await self._cached(role, prompt, model, key_inputs, owner, compute)
        return str(result["text"]), result.get("id"), used

    async def _cached(
        self,
        role: Role,
        prompt: Prompt,
        model: str,
        inputs: dict[str, Any],
        owner: str | None,
        compute: Callable[[str], Awaitable[tuple[dict[str, Any], BaseMessage | None]]],
    ) -> tuple[dict[str, Any], str]:
        key = self._cache_key(prompt, model, inputs, owner)
        if key is not None and self._cache is not None:
            hit = await self._cache.get(key)
            if hit is not None:
                self._log(role, model, prompt, 0.0, None, attempt=0, outcome="cache_hit")
                return cast(dict[str, Any], json.loads(hit)), model
        result, used = await self._with_fallback(role, prompt, model, compute)
        if key is not None and self._cache is not None:
            await self._cache.set(key, json.dumps(result).encode(), self._config.cache_ttl)
        return result, used

    def _cache_key(
        self, prompt: Prompt, model: str, inputs: dict[str, Any], owner: str | None
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
        compute: Callable[[str], Awaitable[tuple[dict[str, Any], BaseMessage | None]]],
    ) -> tuple[dict[str, Any], str]:
        candidates = [model]
        if self._config.fallback_model and self._config.fallback_model != model:
            candidates.append(self._config.fallback_model)
        last: BaseException | None = None
        for chosen in candidates:
            try:
                return await self._retrying(role, prompt, chosen, compute), chosen
            except Exception as error:
                if not is_transient(error):
                    raise
                last = error
                logger.warning(
                    "model %s exhausted its retries",
                    chosen,
                    extra={"event": "model_fallback", "role": role, "model": chosen},
                )
        assert last is not None
        raise last

    async def _retrying(
        self,
        role: Role,
        prompt: Prompt,
        model: str,
        compute: Callable[[str], Awaitable[tuple[dict[str, Any], BaseMessage | None]]],
    ) -> dict[str, Any]:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._config.max_retries + 1),
            wait=wait_random_exponential(
                multiplier=self._config.backoff_initial, max=self._config.backoff_max
            ),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                started = time.perf_counter()
                try:
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
        extra: dict[str, Any] = {
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


def build_openai_provider(config: OpenAIConfig, *, cache: Cache | None = None) -> OpenAIProvider:
    """Build the OpenAI-backed provider from plain configuration."""
    return OpenAIProvider(config, cache=cache)
