"""The ``ModelProvider`` protocol: the tasks agents ask of a model, their inputs and results.

Agents ask for tasks, not chats: ``route``, ``rewrite_query``, ``draft_answer``,
``describe_image`` and ``judge`` each return a typed result that records the
prompt (name and version) it used.

Errors::

    ModelError                 base class
    ├── ModelOutputInvalid     the model answered, but not in the requested shape
    └── ModelUnavailable       the endpoint refused or did not answer, retries and the
                               fallback exhausted or the call's deadline passed; says which
                               endpoint and what it answered (the transport error is its
                               ``__cause__``)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from prompts import Prompt

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
    "ModelUnavailable",
    "Next",
    "PassageLike",
    "PromptUse",
    "QueryRewrite",
    "RouteDecision",
    "RouteFacts",
]

Next = Literal["retriever", "vision", "critic", "finish"]
"""Where the supervisor can hand off to; ``finish`` ends the turn."""

NEXT_OPTIONS: tuple[Next, ...] = get_args(Next)


class ModelError(Exception):
    """Base class for model-layer failures that are not transport errors."""


class ModelOutputInvalid(ModelError):
    """Raised when a model's reply cannot be parsed into the requested result; not retried."""


class ModelUnavailable(ModelError):
    """Raised when the model endpoint refused a call (an HTTP error status), could not be
    reached, or did not answer before the call's deadline; the message names the endpoint."""

    def __init__(self, message: str, *, base_url: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.base_url = base_url
        self.status_code = status_code


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

    @classmethod
    def of(cls, prompt: Prompt) -> PromptUse:
        """The name and version of ``prompt``."""
        return cls(prompt.name, prompt.version)


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


# --------------------------------------------------------------------------- protocol


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
        facts: Mapping[str, object],
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
