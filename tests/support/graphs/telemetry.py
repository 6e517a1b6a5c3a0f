"""A graph whose node logs a line and calls a scripted chat model that reports its token
usage, or fails when asked: what the run telemetry tests measure."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

log = logging.getLogger("tests.telemetry_graph")


class ScriptedChat(BaseChatModel):
    """Answers "ok", using 7 tokens in and 3 out; raises on a message saying "boom"."""

    @property
    def _llm_type(self) -> str:
        return "scripted-chat"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        raise NotImplementedError("async only")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if any(message.content == "boom" for message in messages):
            raise RuntimeError("the scripted model was told to fail")
        reply = AIMessage(
            "ok", usage_metadata={"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
        )
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        return {"ls_provider": "scripted", "ls_model_name": "scripted-1", "ls_model_type": "chat"}


class State(TypedDict, total=False):
    text: str
    answer: str


async def answer(state: State) -> State:
    log.info("answering")
    reply = await ScriptedChat().ainvoke(
        state.get("text", ""), config={"metadata": {"prompt": "answer", "prompt_version": 2}}
    )
    return {"answer": str(reply.content)}


builder = StateGraph(State)
builder.add_node("answer", answer)
builder.add_edge(START, "answer")
builder.add_edge("answer", END)
graph = builder.compile()
