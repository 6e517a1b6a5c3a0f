"""The vision node: reads the question's image and drafts an answer about it.

This module owns the image path: OpenAI-style ``image_url`` content parts of the
last human message (data URLs or http(s) URLs fetched through the toolbox's
guarded fetcher) → ``load_image_part`` → ``preprocess`` (size and decode limits)
→ OCR and measured facts → ``ModelProvider.describe_image``. The OCR text becomes
the draft's evidence (a passage with ``source="ocr"``), so the critic scores an
image answer the same way as a document answer.

A refused or unreadable image never fails the run: the reason lands in
``state["image_findings"]`` and in an assistant message, and the supervisor
carries on without the image. The node's ``custom`` event::

    {"type": "confidence", "node": "vision", "score": <OCR confidence or None>,
     "components": {"ocr_chars": 42, "images": 1}, "ok": true, "message": "...",
     "provider": "offline"}
"""

from __future__ import annotations

import asyncio
import uuid

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from agents.context import Context
from agents.state import ImageFindings, PassageRecord, State, StateUpdate
from agents.turn import context_of, emit, image_urls, last_human
from tools.images import (
    ImageRejected,
    OcrFailed,
    image_facts,
    load_image_part,
    ocr,
    preprocess,
)
from tools.net import OutboundError
from tools.toolbox import current_toolbox

__all__ = ["vision"]


async def vision(state: State, runtime: Runtime[Context]) -> StateUpdate:
    """Read the first image of the question and draft an answer from it."""
    toolbox = current_toolbox()
    context = context_of(runtime)
    human = last_human(state["messages"])
    urls = image_urls(human) if human is not None else []
    question = state.get("question", "")
    event: dict[str, object] = {"type": "confidence", "node": "vision"}

    try:
        if not urls:
            raise ImageRejected("the question has no image")
        data = await load_image_part(urls[0], fetcher=toolbox.fetcher, limits=toolbox.image_limits)
        prepared = await asyncio.to_thread(preprocess, data, toolbox.image_limits)
        facts: dict[str, object] = dict(await asyncio.to_thread(image_facts, prepared))
    except (ImageRejected, OutboundError) as error:
        message = f"The attached image could not be used: {error}"
        findings = ImageFindings(
            ok=False, message=message, ocr_text="", ocr_confidence=None, facts={}
        )
        emit(
            runtime,
            {
                **event,
                "score": None,
                "components": {"ocr_chars": 0, "images": len(urls)},
                "ok": False,
                "message": message,
                "provider": toolbox.provider.name,
            },
        )
        return {
            "image_findings": findings,
            "messages": [AIMessage(content=message, name="vision", id=str(uuid.uuid4()))],
        }

    try:
        text = " ".join((await ocr(prepared)).split())
        message = f"Read {len(text)} characters of text from the image."
    except OcrFailed as error:
        # The image is still usable without its text: describe it from its facts.
        text, message = "", f"Text recognition was not available: {error}"
    raw_confidence = facts.get("ocr_confidence")
    ocr_confidence = float(raw_confidence) if isinstance(raw_confidence, int | float) else None
    description = await toolbox.provider.describe_image(
        question, prepared, text, facts, model=context.vision_model, owner=context.owner
    )
    evidence = [
        PassageRecord(
            document_id="image-1",
            chunk=0,
            text=text,
            score=ocr_confidence if ocr_confidence is not None else 1.0,
            source="ocr",
        )
    ]
    findings = ImageFindings(
        ok=True, message=message, ocr_text=text, ocr_confidence=ocr_confidence, facts=facts
    )
    emit(
        runtime,
        {
            **event,
            "score": ocr_confidence,
            "components": {"ocr_chars": len(text), "images": len(urls)},
            "ok": True,
            "message": message,
            "provider": toolbox.provider.name,
        },
    )
    return {
        "image_findings": findings,
        "passages": evidence if text else [],
        "citations": [],
        "draft": description.text,
        "draft_source": "vision",
        "draft_message_id": description.message_id,
        "verdict": None,
        "prompts": {description.prompt.name: description.prompt.version},
    }
