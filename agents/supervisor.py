"""The supervisor node: decides which agent acts next and hands off with ``Command``.

This module owns the routing guardrails (which hand-offs are allowed given the
turn's state) and the bookkeeping of a new turn. The choice among the allowed
options is the model provider's (``ModelProvider.route``); every decision is
recorded in ``state["route"]`` and streamed as a ``custom`` event::

    {"type": "route", "node": "supervisor", "decision": "retriever", "reason": "...",
     "provider": "offline", "prompt": "supervisor", "prompt_version": 1}
"""

from __future__ import annotations

from typing import Literal, TypeAlias

from langgraph.runtime import Runtime
from langgraph.types import Command

from agents.context import Context
from agents.state import RouteRecord, State, StateUpdate
from agents.turn import (
    context_of,
    emit,
    image_urls,
    last_human,
    new_turn_update,
    question_text,
    turn_id,
)
from tools.models.provider import Next, RouteDecision, RouteFacts
from tools.toolbox import current_toolbox

__all__ = ["FINAL_VERDICTS", "allowed_next", "supervisor"]

Goto: TypeAlias = Literal["retriever", "vision", "critic", "__end__"]
"""Nodes the supervisor hands off to; ``__end__`` finishes the turn."""

FINAL_VERDICTS = frozenset({"accepted", "approved", "edited", "rejected"})
"""Verdicts after which the turn is over."""


def allowed_next(facts: RouteFacts) -> tuple[Next, ...]:
    """The hand-offs that make sense now; the provider chooses among them."""
    if facts.verdict in FINAL_VERDICTS:
        return ("finish",)
    if facts.has_image and not facts.image_done:
        return ("vision", "retriever")
    if facts.has_draft and facts.verdict is None:
        return ("critic",)
    if facts.verdict == "revise" and facts.has_image and facts.draft_source == "vision":
        return ("vision", "retriever")
    return ("retriever",)


async def supervisor(state: State, runtime: Runtime[Context]) -> Command[Goto]:
    """Choose the next agent for the current question."""
    toolbox = current_toolbox()
    context = context_of(runtime)
    human = last_human(state["messages"])
    if human is None:
        return Command(goto="__end__")

    turn = turn_id(state, human)
    fresh = state.get("turn") != turn
    findings = None if fresh else state.get("image_findings")
    has_image = bool(image_urls(human))
    facts = RouteFacts(
        question=question_text(human),
        has_image=has_image,
        image_done=findings is not None,
        has_draft=not fresh and bool(state.get("draft")),
        draft_source=None if fresh else state.get("draft_source"),
        verdict=None if fresh else state.get("verdict"),
        revisions=0 if fresh else state.get("revisions", 0),
        allowed=(),
    )
    allowed = allowed_next(facts)
    if findings is not None and not findings["ok"]:
        # The image was rejected: a second vision attempt would be refused again.
        allowed = tuple(a for a in allowed if a != "vision") or ("retriever",)
    facts = RouteFacts(**{**facts.__dict__, "allowed": allowed})
    decision = await toolbox.provider.route(
        facts, model=context.supervisor_model, owner=context.owner
    )
    if decision.next not in allowed:
        # Providers are asked to stay within `allowed`; a provider that does not is overruled.
        reason = f"{decision.next} is not allowed now ({decision.reason}); using {allowed[0]}"
        decision = RouteDecision(allowed[0], reason, decision.prompt, decision.model)

    record = RouteRecord(
        node="supervisor",
        decision=decision.next,
        reason=decision.reason,
        prompt=decision.prompt.name,
        prompt_version=decision.prompt.version,
        provider=toolbox.provider.name,
    )
    emit(runtime, {"type": "route", **record})
    update: StateUpdate
    if fresh:
        update = new_turn_update(turn, facts.question, record)
    else:
        update = {
            "route": [record],
            "prompts": {decision.prompt.name: decision.prompt.version},
        }
    goto: Goto = "__end__" if decision.next == "finish" else decision.next
    return Command(goto=goto, update=update)
