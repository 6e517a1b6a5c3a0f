"""Image intake for the vision agent: loading, validation, normalisation, OCR, facts.

Every image a user sends goes through `preprocess` before anything else looks
at it: the byte size is checked first, then format and pixel count are read
from the header, before any pixel is decoded, so a decompression bomb is
refused cheaply. Accepted images are upright (EXIF orientation applied), RGB,
at most `max_side` pixels on their longer side, and re-encoded as JPEG, which
also drops their metadata. `ocr` runs the `tesseract` CLI (Debian package
`tesseract-ocr`) on a prepared image; `find_tesseract` says whether it can run here,
so the server can say so at startup instead of answering as if an image had no text.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
import shutil
import urllib.parse
from dataclasses import dataclass, field
from typing import TypedDict

from PIL import Image, ImageOps, UnidentifiedImageError

from tools.net import UrlFetcher

__all__ = [
    "OCR_INSTALL_HINT",
    "ImageFacts",
    "ImageLimits",
    "ImageRejected",
    "OcrFailed",
    "OcrUnavailable",
    "PreparedImage",
    "decode_data_url",
    "find_tesseract",
    "image_facts",
    "load_image_part",
    "ocr",
    "preprocess",
]

ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP", "GIF", "BMP"})
"""Pillow format names accepted by default."""


class ImageRejected(Exception):
    """Raised when an image is refused (size, format, pixels, or undecodable); say why."""


class OcrFailed(Exception):
    """Raised when text recognition could not run (tesseract missing, failing, too slow)."""


class OcrUnavailable(OcrFailed):
    """Raised when there is no tesseract to run: the image's text cannot be read on this
    machine at all (unlike a failure on one image)."""


OCR_INSTALL_HINT = (
    "install tesseract (Debian/Ubuntu: apt-get install tesseract-ocr; macOS: brew install "
    "tesseract) or point TESSERACT_CMD at it"
)
"""How to get OCR, for the startup warning and for answers about images."""


def find_tesseract(command: str = "tesseract") -> str | None:
    """The executable `command` names (a name on the PATH or a path), or None when absent."""
    return shutil.which(command)


@dataclass(frozen=True)
class ImageLimits:
    """Bounds applied to every incoming image."""

    max_bytes: int = 10 * 1024 * 1024
    """Largest encoded image accepted."""
    max_pixels: int = 40_000_000
    """Largest width * height accepted, checked before decoding."""
    max_side: int = 1024
    """Longer side of the prepared image; larger images are scaled down."""
    jpeg_quality: int = 85
    """Quality of the re-encoded JPEG."""
    formats: frozenset[str] = field(default_factory=lambda: ALLOWED_FORMATS)
    """Pillow format names accepted."""

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_pixels, self.max_side) < 1:
            raise ValueError("image limits must be positive")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError("jpeg_quality must be between 1 and 95")


@dataclass(frozen=True)
class PreparedImage:
    """A validated, upright, RGB JPEG ready for a model or OCR."""

    data: bytes
    width: int
    height: int
    original_format: str
    mime_type: str = "image/jpeg"

    @property
    def data_url(self) -> str:
        """The image as a base64 `data:` URL, as chat models accept it."""
        return f"data:{self.mime_type};base64,{base64.b64encode(self.data).decode('ascii')}"


_DATA_URL = re.compile(r"^data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)$", re.DOTALL)


def decode_data_url(url: str, *, max_bytes: int | None = None) -> bytes:
    """Bytes of a `data:image/...` URL (base64 or percent-encoded)."""
    match = _DATA_URL.match(url)
    if match is None:
        raise ImageRejected("not a data: URL")
    media_type = match["type"].strip().lower()
    if media_type and not media_type.startswith("image/"):
        raise ImageRejected(f"data URL has media type {media_type!r}, expected image/*")
    payload = match["data"]
    is_base64 = "base64" in (p.strip().lower() for p in match["params"].split(";"))
    # Check the size the payload will decode to before decoding it.
    estimate = len(payload) * 3 // 4 if is_base64 else len(payload)
    if max_bytes is not None and estimate > max_bytes + 3:
        raise ImageRejected(f"image is larger than {max_bytes} bytes")
    if is_base64:
        try:
            data = base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageRejected(f"data URL is not valid base64: {exc}") from exc
    else:
        data = urllib.parse.unquote_to_bytes(payload)
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageRejected(f"image is {len(data)} bytes, larger than {max_bytes} bytes")
    if not data:
        raise ImageRejected("data URL is empty")
    return data


async def load_image_part(url: str, *, fetcher: UrlFetcher, limits: ImageLimits) -> bytes:
    """Raw bytes of an image content part: a `data:` URL or an http(s) URL via `fetcher`."""
    if url.startswith("data:"):
        return decode_data_url(url, max_bytes=limits.max_bytes)
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in ("http", "https"):
        raise ImageRejected("image URL must be a data: URL or http(s)")
    data = await fetcher(url)
    if len(data) > limits.max_bytes:
        raise ImageRejected(f"image is {len(data)} bytes, larger than {limits.max_bytes} bytes")
    return data


def preprocess(data: bytes, limits: ImageLimits) -> PreparedImage:
    """Validate and normalise an image (CPU-bound: call it via `asyncio.to_thread`)."""
    if len(data) > limits.max_bytes:
        raise ImageRejected(f"image is {len(data)} bytes, larger than {limits.max_bytes} bytes")
    try:
        # `formats` keeps Pillow from probing decoders we never accept. Open reads
        # only the header; Pillow's own bomb check may fire here (as an error, or
        # as a warning that a strict warnings filter turns into one).
        image = Image.open(io.BytesIO(data), formats=sorted(limits.formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(
            f"image has too many pixels (limit {limits.max_pixels}): {exc}"
        ) from exc
    except UnidentifiedImageError as exc:
        allowed = ", ".join(sorted(limits.formats))
        raise ImageRejected(
            f"image format not recognised or not allowed (allowed: {allowed})"
        ) from exc
    with image:
        original_format = str(image.format)
        if original_format not in limits.formats:
            raise ImageRejected(f"image format {original_format} is not allowed")
        width, height = image.size
        if width * height > limits.max_pixels:
            raise ImageRejected(
                f"image is {width}x{height} = {width * height} pixels, "
                f"more than the limit of {limits.max_pixels} pixels"
            )
        try:
            # JPEG can decode straight at a reduced scale (still >= max_side).
            image.draft("RGB", (limits.max_side, limits.max_side))
            upright = ImageOps.exif_transpose(image)
            rgb = _to_rgb(upright)
            rgb.thumbnail((limits.max_side, limits.max_side), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            rgb.save(out, format="JPEG", quality=limits.jpeg_quality, optimize=True)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ImageRejected(f"image could not be decoded: {exc}") from exc
    return PreparedImage(
        data=out.getvalue(), width=rgb.width, height=rgb.height, original_format=original_format
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB copy of `image`, transparent areas flattened onto white."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


_OCR_LIMITS = ImageLimits(max_side=2048, jpeg_quality=95)
_LANG = re.compile(r"^[A-Za-z0-9_]+(\+[A-Za-z0-9_]+)*$")


async def ocr(
    image: PreparedImage | bytes,
    *,
    lang: str = "eng",
    timeout: float = 60.0,  # noqa: ASYNC109 - a default bound; it also kills the child
    command: str = "tesseract",
) -> str:
    """Text in `image` as read by tesseract (`command`: a name on the PATH or a path); raw
    bytes are validated with `preprocess` first."""
    if not _LANG.match(lang):
        raise ValueError(f"invalid tesseract language {lang!r}")
    if not isinstance(image, PreparedImage):
        image = await asyncio.to_thread(preprocess, image, _OCR_LIMITS)
    binary = find_tesseract(command)
    if binary is None:
        raise OcrUnavailable(f"tesseract was not found ({command!r}); {OCR_INSTALL_HINT}")
    process = await asyncio.create_subprocess_exec(
        binary,
        "stdin",
        "stdout",
        "-l",
        lang,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await process.communicate(image.data)
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise OcrFailed(f"tesseract took longer than {timeout} s") from exc
    finally:
        if process.returncode is None:
            # Cancelled: do not leave the child running.
            process.kill()
            await process.wait()
    if process.returncode != 0:
        detail = stderr.decode("utf-8", "replace").strip()[-500:]
        raise OcrFailed(f"tesseract exited with {process.returncode}: {detail}")
    return stdout.decode("utf-8", "replace").strip()


class DominantColour(TypedDict):
    """One of an image's main colours."""

    hex: str
    share: float


class ImageFacts(TypedDict):
    """Basic facts about a prepared image, cheap to compute and to put in a prompt."""

    width: int
    height: int
    mode: str
    original_format: str
    orientation: str
    brightness: float
    """Mean luminance, 0 (black) to 1 (white)."""
    dominant_colours: list[DominantColour]
    """Up to five colours, most common first, with their share of the pixels."""


def image_facts(prepared: PreparedImage, *, colours: int = 5) -> ImageFacts:
    """Size, mode, brightness and dominant colours of a prepared image."""
    with Image.open(io.BytesIO(prepared.data)) as image:
        rgb = image.convert("RGB")
    small = rgb.copy()
    small.thumbnail((96, 96))
    grey = small.convert("L")
    histogram = grey.histogram()
    pixels = sum(histogram)
    brightness = sum(i * n for i, n in enumerate(histogram)) / (255 * pixels)
    quantised = small.quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    palette = quantised.getpalette() or []
    counts = sorted(quantised.getcolors(colours) or [], reverse=True)
    dominant: list[DominantColour] = []
    for count, index in counts:
        start = 3 * int(index)  # type: ignore[call-overload]
        r, g, b = palette[start : start + 3]
        dominant.append({"hex": f"#{r:02x}{g:02x}{b:02x}", "share": round(count / pixels, 3)})
    w, h = rgb.size
    orientation = "landscape" if w > h else "portrait" if h > w else "square"
    return {
        "width": w,
        "height": h,
        "mode": rgb.mode,
        "original_format": prepared.original_format,
        "orientation": orientation,
        "brightness": round(brightness, 3),
        "dominant_colours": dominant,
    }
