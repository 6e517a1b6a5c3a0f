"""The vision node: OCR on a rendered image, image facts, and refused images."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.runtime import Runtime
from PIL import Image, PngImagePlugin

from agents.context import Context
from agents.state import State
from agents.vision import vision
from tests.agents.support import text_png_data_url
from tools.toolbox import Toolbox


def image_state(url: str, text: str = "What does the sign say?") -> State:
    content: list[str | dict[str, Any]] = [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    return State(messages=[HumanMessage(content=content, id="h")], question=text)


@pytest.mark.usefixtures("toolbox")
async def test_reads_the_text_in_an_image(
    runtime: Callable[..., Runtime[Context]], events: list[dict[str, Any]]
) -> None:
    update = await vision(image_state(text_png_data_url("OPEN DAILY 9 TO 5")), runtime())

    findings = update["image_findings"]
    assert findings["ok"] is True
    assert "OPEN DAILY" in findings["ocr_text"]
    assert findings["facts"]["width"] == 900
    assert findings["facts"]["original_format"] == "PNG"
    assert "OPEN DAILY" in update["draft"]
    assert update["draft_source"] == "vision"
    [evidence] = update["passages"]
    assert evidence["source"] == "ocr"
    assert evidence["text"] == findings["ocr_text"]
    [event] = events
    assert event["node"] == "vision"
    assert event["type"] == "confidence"
    assert event["ok"] is True
    assert event["components"]["ocr_chars"] == len(findings["ocr_text"])


@pytest.mark.usefixtures("toolbox")
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("data:text/plain;base64,aGVsbG8=", "media type"),
        ("data:image/png;base64,bm90IGFuIGltYWdl", "could not be used"),
        ("http://127.0.0.1:9/secret.png", "could not be used"),
        ("ftp://example.com/a.png", "data: URL or http(s)"),
    ],
)
async def test_a_refused_image_is_a_message_not_a_crash(
    runtime: Callable[..., Runtime[Context]], events: list[dict[str, Any]], url: str, reason: str
) -> None:
    update = await vision(image_state(url), runtime())

    findings = update["image_findings"]
    assert findings["ok"] is False
    assert reason in findings["message"]
    [message] = update["messages"]
    assert isinstance(message, AIMessage)
    assert message.content == findings["message"]
    assert "draft" not in update
    assert events[0]["ok"] is False


def text_bomb_data_url() -> str:
    """A small PNG whose zTXt chunk inflates past Pillow's MAX_TEXT_CHUNK."""
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buffer, format="PNG")
    png = buffer.getvalue()
    body = b"Comment\x00\x00" + zlib.compress(b"A" * (PngImagePlugin.MAX_TEXT_CHUNK * 8), 9)
    chunk = (
        struct.pack(">I", len(body))
        + b"zTXt"
        + body
        + struct.pack(">I", zlib.crc32(b"zTXt" + body))
    )
    at = png.index(b"IDAT") - 4
    return "data:image/png;base64," + base64.b64encode(png[:at] + chunk + png[at:]).decode()


@pytest.mark.usefixtures("toolbox")
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (text_bomb_data_url(), "could not be read"),
        ("http://0177.0.0.1/a.png", "not a valid URL"),
        ("http://2130706433/a.png", "non-standard form"),
        ("http://0x7f.1/a.png", "non-standard form"),
        ("https://017700000001/a.png", "non-standard form"),
    ],
)
async def test_a_hostile_image_is_that_images_error(
    runtime: Callable[..., Runtime[Context]], events: list[dict[str, Any]], url: str, reason: str
) -> None:
    update = await vision(image_state(url), runtime())

    findings = update["image_findings"]
    assert findings["ok"] is False
    assert findings["message"].startswith("The attached image could not be used")
    assert reason in findings["message"]
    [message] = update["messages"]
    assert message.content == findings["message"]
    assert events[0]["ok"] is False


async def test_without_ocr_the_answer_says_so_instead_of_finding_no_text(
    toolbox: Toolbox, runtime: Callable[..., Runtime[Context]], events: list[dict[str, Any]]
) -> None:
    toolbox.tesseract_cmd = "/nonexistent/bin/tesseract"
    update = await vision(image_state(text_png_data_url("OPEN DAILY 9 TO 5")), runtime())

    findings = update["image_findings"]
    assert findings["ok"] is True  # the image itself was fine
    assert findings["ocr_text"] == ""
    assert findings["facts"]["ocr"] == "unavailable"
    assert findings["message"].startswith("Text recognition (OCR) is unavailable on this server")
    assert "No text was found" not in update["draft"]
    assert "Text recognition (OCR) is unavailable on this server" in update["draft"]
    assert "apt-get install tesseract-ocr" in update["draft"]
    assert update["draft_message_id"] is None
    assert update["passages"] == []
    assert events[0]["message"] == findings["message"]
