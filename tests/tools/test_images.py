from __future__ import annotations

import base64
import io
import json
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from tests.support.servers import ROOT
from tests.tools.conftest import LoopbackServer
from tools.images import (
    OCR_INSTALL_HINT,
    DecodeBudget,
    ImageLimits,
    ImageRejected,
    OcrFailed,
    OcrUnavailable,
    PreparedImage,
    decode_cost,
    decode_data_url,
    find_tesseract,
    image_facts,
    load_image_part,
    ocr,
    preprocess,
)
from tools.net import OutboundBlocked, PublicFetcher

LIMITS = ImageLimits()
ORIENTATION = 0x0112


def text_image(text: str = "TRELLIS 42") -> Image.Image:
    font = ImageFont.load_default(size=48)
    image = Image.new("RGB", (520, 120), "white")
    ImageDraw.Draw(image).text((20, 30), text, fill="black", font=font)
    return image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


async def test_ocr_reads_rendered_text() -> None:
    prepared = preprocess(encode(text_image(), "PNG"), LIMITS)
    assert (prepared.width, prepared.height, prepared.original_format) == (520, 120, "PNG")
    assert await ocr(prepared) == "TRELLIS 42"


async def test_ocr_accepts_raw_bytes() -> None:
    assert await ocr(encode(text_image("HELLO OCR"), "PNG")) == "HELLO OCR"


@pytest.mark.parametrize(("orientation", "stored_rotation"), [(6, 90), (8, -90)])
async def test_exif_orientation_is_applied(orientation: int, stored_rotation: int) -> None:
    # A camera stores the pixels sideways and says how to turn them in EXIF.
    sideways = text_image().rotate(stored_rotation, expand=True)
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    data = encode(sideways, "JPEG", exif=exif.tobytes(), quality=95)
    prepared = preprocess(data, LIMITS)
    assert (prepared.width, prepared.height) == (520, 120)
    assert await ocr(prepared) == "TRELLIS 42"
    with Image.open(io.BytesIO(prepared.data)) as reread:
        assert ORIENTATION not in reread.getexif()


def pixel_blocks_allocated() -> int:
    """Blocks Pillow's image memory arena has handed out so far (pixel buffers)."""
    stats: dict[str, int] = Image.core.get_stats()  # type: ignore[attr-defined]
    return stats["allocated_blocks"]


@pytest.mark.parametrize(
    "side",
    [
        14_000,  # past twice Pillow's MAX_IMAGE_PIXELS: Pillow's own check refuses it
        9_000,  # below Pillow's limit: refused by ImageLimits.max_pixels
    ],
)
def test_decompression_bomb_is_rejected_before_decoding(side: int) -> None:
    # One-bit pixels compress to a few tens of kilobytes; decoded they would
    # need side * side bytes (196 MB for 14,000 x 14,000).
    bomb = encode(Image.new("1", (side, side)), "PNG")
    assert len(bomb) < 1_000_000
    before = pixel_blocks_allocated()
    started = time.perf_counter()
    with pytest.raises(ImageRejected, match="pixels"):
        preprocess(bomb, LIMITS)
    assert time.perf_counter() - started < 1.0
    assert pixel_blocks_allocated() == before, "pixel memory was allocated"


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def with_chunk(png: bytes, chunk: bytes, *, after_pixels: bool) -> bytes:
    """`png` with `chunk` inserted before its first IDAT, or just before IEND."""
    at = png.index(b"IDAT") - 4 if not after_pixels else png.rindex(b"IEND") - 4
    return png[:at] + chunk + png[at:]


def text_bombs() -> list[tuple[str, bytes]]:
    """PNGs whose text chunks inflate far past Pillow's MAX_TEXT_CHUNK (a few KB each)."""
    inflated = zlib.compress(b"A" * (PngImagePlugin.MAX_TEXT_CHUNK * 8), 9)
    ztxt = png_chunk(b"zTXt", b"Comment\x00\x00" + inflated)
    itxt = png_chunk(b"iTXt", b"Comment\x00\x01\x00en\x00\x00" + inflated)
    png = encode(Image.new("RGB", (64, 64), "red"), "PNG")
    return [
        ("zTXt", with_chunk(png, ztxt, after_pixels=False)),
        ("iTXt", with_chunk(png, itxt, after_pixels=False)),
        ("zTXt after IDAT", with_chunk(png, ztxt, after_pixels=True)),
    ]


@pytest.mark.parametrize(("name", "bomb"), text_bombs())
def test_a_text_chunk_bomb_is_refused_not_raised(name: str, bomb: bytes) -> None:
    assert len(bomb) < 100_000
    with pytest.raises(ImageRejected, match=r"could not be (read|decoded).*[Tt]oo [Ll]arge"):
        preprocess(bomb, LIMITS)


def test_the_decode_cost_counts_pillows_pixel_storage() -> None:
    def cost(mode: str) -> int:
        image = Image.open(io.BytesIO(encode(Image.new(mode, (1000, 500)), "PNG")))
        return decode_cost(image, 1) - decode_cost(Image.new("L", (0, 0)), 1)

    assert cost("L") == 500_000
    assert cost("RGB") == 2_000_000  # four bytes a pixel, as Pillow keeps RGB
    assert cost("RGBA") == 4_000_000  # and its premultiplied copy while resizing
    assert cost("P") == 4_500_000  # converted to RGBA first


def test_the_budget_bounds_what_is_held_at_once_and_refuses_what_never_fits() -> None:
    budget = DecodeBudget(10, wait_seconds=30)
    held: list[int] = []

    def hold(n: int) -> None:
        with budget.reserve(n):
            held.append(budget.held)
            time.sleep(0.02)

    threads = [threading.Thread(target=hold, args=(n,)) for n in [4, 6, 3, 7, 5, 5] * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(held) == 18
    assert max(held) <= 10
    assert budget.peak == max(held)
    assert budget.held == 0
    with pytest.raises(ImageRejected, match="more than"):
        budget.reserve(11).__enter__()
    busy = DecodeBudget(10, wait_seconds=0.05)
    with busy.reserve(8), pytest.raises(ImageRejected, match="busy"):
        busy.reserve(3).__enter__()
    assert busy.held == 0


def test_an_image_bigger_than_the_budget_is_refused_before_decoding() -> None:
    data = encode(Image.new("RGB", (2000, 2000)), "PNG")
    before = pixel_blocks_allocated()
    with pytest.raises(ImageRejected, match="MB to decode"):
        preprocess(data, LIMITS, budget=DecodeBudget(16 * 2**20))
    assert pixel_blocks_allocated() == before
    assert preprocess(data, LIMITS, budget=DecodeBudget(64 * 2**20)).width == LIMITS.max_side


def test_32_near_limit_images_at_once_stay_within_the_decode_budget(tmp_path: Path) -> None:
    """The shipped defaults: IMAGE_MAX_PIXELS=16000000, IMAGE_DECODE_BUDGET_MB=256.

    Before the budget, one such PNG (RGB, 4880x3260) took ~200 MB while decoding and 8 at
    once 1.6 GB; 32 at once now stay under the budget (measured: ~180 MB)."""
    width, height = 4880, 3260
    assert 0.99 * LIMITS.max_pixels < width * height <= LIMITS.max_pixels
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for x in range(0, width, 97):
        draw.line((x, 0, width - x, height), fill=(x % 255, 40, 200), width=3)
    path = tmp_path / "near-limit.png"
    image.save(path, compress_level=1)
    del image, draw
    budget_mb = 256
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.image_memory",
            str(path),
            "32",
            str(LIMITS.max_pixels),
            str(budget_mb),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    measured = json.loads(result.stdout)
    assert measured["prepared"] == 32, measured
    # The first decode alone is ~90 MB: the budget is what keeps the others out.
    assert 60 < measured["growth_mb"] <= budget_mb, measured


def test_too_many_pixels_for_our_limit_but_not_for_pillow() -> None:
    data = encode(Image.new("1", (3_000, 3_000)), "PNG")
    with pytest.raises(ImageRejected, match="9000000 pixels"):
        preprocess(data, ImageLimits(max_pixels=4_000_000))


@pytest.mark.parametrize("fmt", ["TIFF", "ICO", "PPM"])
def test_disallowed_formats_are_rejected(fmt: str) -> None:
    data = encode(Image.new("RGB", (32, 32), "red"), fmt)
    with pytest.raises(ImageRejected, match="format"):
        preprocess(data, LIMITS)


def test_a_format_can_be_refused_by_configuration() -> None:
    data = encode(Image.new("RGB", (8, 8)), "GIF")
    assert preprocess(data, LIMITS).original_format == "GIF"
    with pytest.raises(ImageRejected, match="format"):
        preprocess(data, ImageLimits(formats=frozenset({"PNG"})))


def test_garbage_and_truncated_images_are_rejected() -> None:
    with pytest.raises(ImageRejected):
        preprocess(b"definitely not an image", LIMITS)
    png = encode(text_image(), "PNG")
    with pytest.raises(ImageRejected, match="decoded"):
        preprocess(png[: len(png) // 2], LIMITS)


def test_byte_size_is_checked_first() -> None:
    with pytest.raises(ImageRejected, match="bytes"):
        preprocess(b"\x00" * 2_000, ImageLimits(max_bytes=1_000))


def test_large_images_are_scaled_and_transparency_flattened() -> None:
    image = Image.new("RGBA", (3000, 1500), (0, 0, 0, 0))
    prepared = preprocess(encode(image, "PNG"), LIMITS)
    assert (prepared.width, prepared.height) == (1024, 512)
    with Image.open(io.BytesIO(prepared.data)) as reread:
        assert reread.format == "JPEG"
        assert reread.mode == "RGB"
        assert reread.getpixel((10, 10)) == pytest.approx((255, 255, 255), abs=2)


def test_data_url_round_trip_and_facts() -> None:
    red = encode(Image.new("RGB", (40, 20), (220, 20, 20)), "PNG")
    url = "data:image/png;base64," + base64.b64encode(red).decode()
    assert decode_data_url(url) == red
    prepared = preprocess(decode_data_url(url), LIMITS)
    assert prepared.data_url.startswith("data:image/jpeg;base64,")
    assert decode_data_url(prepared.data_url) == prepared.data
    facts = image_facts(prepared)
    assert (facts["width"], facts["height"], facts["orientation"]) == (40, 20, "landscape")
    assert facts["mode"] == "RGB"
    assert facts["original_format"] == "PNG"
    top = facts["dominant_colours"][0]
    assert top["share"] > 0.9
    r, g, b = (int(top["hex"][i : i + 2], 16) for i in (1, 3, 5))
    assert r > 200
    assert max(g, b) < 50
    assert 0.2 < facts["brightness"] < 0.4


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("data:text/plain;base64,aGVsbG8=", "media type"),
        ("data:image/png;base64,@@@", "base64"),
        ("data:image/png;base64,", "empty"),
        ("not a data url", "data: URL"),
    ],
)
def test_bad_data_urls(url: str, message: str) -> None:
    with pytest.raises(ImageRejected, match=message):
        decode_data_url(url)


def test_data_url_size_is_checked_before_decoding() -> None:
    url = "data:image/png;base64," + "A" * 4000
    with pytest.raises(ImageRejected, match="larger than 1000 bytes"):
        decode_data_url(url, max_bytes=1000)


async def test_load_image_part_from_data_and_http(loopback: LoopbackServer) -> None:
    png = encode(text_image(), "PNG")
    loopback.files["text.png"] = png
    # The loopback server is only reachable because it is explicitly allowed.
    fetcher = PublicFetcher(
        max_bytes=LIMITS.max_bytes, timeout=5.0, allow_hosts=frozenset({"127.0.0.1"})
    )
    url = f"{loopback.base}/bytes/text.png"
    assert await load_image_part(url, fetcher=fetcher, limits=LIMITS) == png
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert await load_image_part(data_url, fetcher=fetcher, limits=LIMITS) == png
    with pytest.raises(ImageRejected, match="bytes"):
        await load_image_part(url, fetcher=fetcher, limits=ImageLimits(max_bytes=100))
    with pytest.raises(ImageRejected, match="http"):
        await load_image_part("file:///etc/passwd", fetcher=fetcher, limits=LIMITS)
    guarded = PublicFetcher(max_bytes=LIMITS.max_bytes, timeout=5.0)
    with pytest.raises(OutboundBlocked):
        await load_image_part(url, fetcher=guarded, limits=LIMITS)


async def test_ocr_rejects_an_odd_language_code() -> None:
    prepared = PreparedImage(data=b"", width=1, height=1, original_format="PNG")
    with pytest.raises(ValueError, match="language"):
        await ocr(prepared, lang="--eng")


async def test_ocr_without_tesseract_is_unavailable_and_says_how_to_install(
    tmp_path: Path,
) -> None:
    missing = str(tmp_path / "tesseract")
    assert find_tesseract(missing) is None
    assert find_tesseract("tesseract") is not None  # this machine has it (the suite needs it)
    prepared = preprocess(encode(text_image("HELLO OCR"), "PNG"), LIMITS)
    with pytest.raises(OcrUnavailable) as raised:
        await ocr(prepared, command=missing)
    assert isinstance(raised.value, OcrFailed)
    assert missing in str(raised.value)
    assert OCR_INSTALL_HINT in str(raised.value)
