"""The prompt catalogue: every prompt loads, formats, and refuses bad names and versions."""

from __future__ import annotations

import pytest

from prompts import PromptNotFound, available_prompts, load_prompt


def test_every_prompt_loads_latest_by_default() -> None:
    catalogue = available_prompts()
    for name in (
        "supervisor",
        "retriever_rewrite",
        "retriever_answer",
        "vision",
        "critic_judge",
        "critic_human_review",
        "critic_rejected",
    ):
        assert name in catalogue
        prompt = load_prompt(name)
        assert prompt.version == max(catalogue[name])
        assert load_prompt(name, prompt.version) == prompt


def test_prompt_format_and_errors() -> None:
    prompt = load_prompt("critic_human_review", 1)
    text = prompt.format(confidence="0.40", threshold="0.60")
    assert "0.40" in text
    assert '{"decision"' in text
    with pytest.raises(KeyError):
        prompt.format(confidence="0.4")
    with pytest.raises(PromptNotFound):
        load_prompt("supervisor", 99)
    with pytest.raises(PromptNotFound):
        load_prompt("../etc")
    system, user = load_prompt("retriever_answer").split(
        question="q", passages="<passage/>", feedback=""
    )
    assert "DATA" in system
    assert user.startswith("<passages>")
