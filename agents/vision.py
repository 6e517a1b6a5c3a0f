"""The vision node: reads the question's image and drafts an answer about it.

This module owns the image path: OpenAI-style ``image_url`` content parts of the
last human message (data URLs or http(s) URLs fetched through the toolbox's
guarded fetcher) → ``load_image_part`` → ``preprocess`` (size and decode limits,
within the toolbox's process-wide decode budget)
→ OCR and measured facts → ``ModelProvider.describe_image``. The OCR text becomes
the draft's evidence (a passage with ``source="ocr"``), so the critic scores an
image answer the same way as a document answer. Without OCR (no tesseract at the
toolbox's ``tesseract_cmd``, or tesseract failing) the facts say ``"ocr":
"unavailable"`` or ``"failed"`` and the draft ends with a note saying so and how to
install it, so an image full of text is never answered as if it had none.

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
    OcrUnavailable,
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
        prepared = await asyncio.to_thread(
            preprocess, data, toolbox.image_limits, budget=toolbox.decode_budget
        )
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

    # The image is still usable without its text: described from its facts, with the
    # answer saying its text was not read (never as if the image had none).
    problem: str | None = None
    try:
        text = " ".join((await ocr(prepared, command=toolbox.tesseract_cmd)).split())
        message = f"Read {len(text)} characters of text from the image."
    except OcrUnavailable as error:
        text, facts["ocr"] = "", "unavailable"
        problem = f"Text recognition (OCR) is unavailable on this server: {error}."
    except OcrFailed as error:
        text, facts["ocr"] = "", "failed"
        problem = f"Text recognition (OCR) failed on this image: {error}."
    if problem is not None:
        message = problem
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
        "draft": description.text if problem is None else f"{description.text} {problem}",
        "draft_source": "vision",
        # With a note added, the answer is not the streamed message: it gets an id of its own.
        "draft_message_id": description.message_id if problem is None else None,
        "verdict": None,
        "prompts": {description.prompt.name: description.prompt.version},
    }
