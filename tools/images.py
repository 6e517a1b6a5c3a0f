"""Image intake for the vision agent: loading, validation, normalisation, OCR, facts.

Every image a user sends goes through `preprocess` before anything else looks
at it: the byte size is checked first, then format and pixel count are read
from the header, before any pixel is decoded, so a decompression bomb is
refused cheaply. Decoding then waits for its share of a process-wide
`DecodeBudget` (the pixel memory it may need, estimated from the header), so
however many images arrive at once, their decoded pixels stay within the budget.
JPEG decodes straight at a reduced scale; other formats are shrunk right after
decoding, before any full-size copy is made. Accepted images are upright (EXIF
orientation applied), RGB, at most `max_side` pixels on their longer side, and
re-encoded as JPEG, which also drops their metadata. A malformed or hostile
image (a text chunk inflating past Pillow's limit, a truncated stream) is an
`ImageRejected`, never another exception. `ocr` runs the `tesseract` CLI
(Debian package `tesseract-ocr`) on a prepared image; `find_tesseract` says
whether it can run here, so the server can say so at startup instead of
answering as if an image had no text.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ctypes
import ctypes.util
import io
import re
import shutil
import struct
import threading
import urllib.parse
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypedDict

from PIL import Image, UnidentifiedImageError

from tools.net import UrlFetcher

__all__ = [
    "OCR_INSTALL_HINT",
    "DecodeBudget",
    "ImageFacts",
    "ImageLimits",
    "ImageRejected",
    "OcrFailed",
    "OcrUnavailable",
    "PreparedImage",
    "decode_cost",
    "decode_data_url",
    "decode_overhead",
    "find_tesseract",
    "image_facts",
    "load_image_part",
    "ocr",
    "preprocess",
    "return_large_frees_to_system",
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


DEFAULT_MAX_PIXELS = 16_000_000
"""Default `ImageLimits.max_pixels` (a 16 MP photo; JPEG is decoded at a reduced scale)."""

WORST_BYTES_PER_PIXEL = 9
"""Most pixel memory `preprocess` needs per pixel of an image (`decode_cost`, on top of
`decode_overhead`): a palette image (1 byte a pixel) converted to RGBA (4), which resizing
copies premultiplied (4)."""


@dataclass(frozen=True)
class ImageLimits:
    """Bounds applied to every incoming image."""

    max_bytes: int = 10 * 1024 * 1024
    """Largest encoded image accepted."""
    max_pixels: int = DEFAULT_MAX_PIXELS
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


class DecodeBudget:
    """Pixel memory that image decodes in this process may hold at once, shared by threads.

    `preprocess` reserves an image's `decode_cost` before decoding it and waits while
    other decodes hold the rest; an image that could never fit is refused at once."""

    def __init__(self, max_bytes: int, *, wait_seconds: float = 60.0) -> None:
        if max_bytes < 1:
            raise ValueError("a decode budget must be positive")
        self.max_bytes = max_bytes
        self.wait_seconds = wait_seconds
        self._held = 0
        self._peak = 0
        self._changed = threading.Condition()

    @property
    def held(self) -> int:
        """Bytes reserved right now."""
        return self._held

    @property
    def peak(self) -> int:
        """Most bytes ever reserved at once."""
        return self._peak

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Hold `nbytes` of the budget for the duration (blocking: call it off the loop)."""
        if nbytes > self.max_bytes:
            raise ImageRejected(
                f"image needs about {_mb(nbytes)} MB to decode, more than the "
                f"{_mb(self.max_bytes)} MB all image decodes may use at once"
            )
        with self._changed:
            if not self._changed.wait_for(
                lambda: self._held + nbytes <= self.max_bytes, timeout=self.wait_seconds
            ):
                raise ImageRejected(
                    f"the server is busy decoding other images (waited {self.wait_seconds:g} s); "
                    "try again"
                )
            self._held += nbytes
            self._peak = max(self._peak, self._held)
        try:
            yield
        finally:
            with self._changed:
                self._held -= nbytes
                self._changed.notify_all()


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def return_large_frees_to_system(threshold: int = 4 * 2**20) -> bool:
    """Make glibc allocate blocks of `threshold` bytes or more with their own mapping, so
    freeing one hands its memory straight back to the system; True when it did (glibc).

    By default glibc raises that threshold to the size of the largest block freed so far,
    up to 32 MB, so Pillow's 16 MB pixel blocks soon come from per-thread malloc arenas
    that keep what they held: every thread that ever decoded an image would keep its
    largest image's worth resident, and a process would grow with its threads, not with
    its `DecodeBudget`. Call it once per process, before decoding (the toolbox does)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: its allocator is its own business
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


def _mb(nbytes: int) -> str:
    return f"{nbytes / 2**20:.0f}"


_SHRINKS_AS_IS = frozenset({"L", "RGB"})
"""Modes resized without a full-size copy (reduce first, then resample the small image)."""
_PREMULTIPLIED = frozenset({"LA", "RGBA"})
"""Modes Pillow copies, premultiplied, at full size before resizing."""


def _bytes_per_pixel(mode: str) -> int:
    # Pillow keeps 1-byte modes in a byte, I;16* in two, and everything else (RGB too) in four.
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def decode_cost(image: Image.Image, max_side: int) -> int:
    """Bytes of memory `preprocess` may hold at once for `image` (opened, not loaded; after
    any `draft`) shrunk to `max_side`: the decoded pixels, the full-size copies its mode
    needs, and the working memory around them (`decode_overhead`)."""
    pixels = image.width * image.height
    if image.mode in _SHRINKS_AS_IS:
        held = pixels * _bytes_per_pixel(image.mode)
    elif image.mode in _PREMULTIPLIED:
        held = pixels * 8
    else:
        held = pixels * (_bytes_per_pixel(image.mode) + 8)
    return held + decode_overhead(max_side)


def decode_overhead(max_side: int) -> int:
    """Memory a decode holds besides the full-size pixels: the reduced copy (under twice
    `max_side` a side), the resampled one, the decoder's and the JPEG encoder's buffers."""
    return 6 * 4 * max_side * max_side + 4 * 2**20


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


_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,  # e.g. a zTXt/iTXt chunk inflating past Pillow's MAX_TEXT_CHUNK
    EOFError,
    IndexError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)
"""What Pillow raises on a malformed or hostile image, at open or while decoding."""

_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""EXIF orientation to the transpose that makes the image upright (as `ImageOps`)."""


def preprocess(
    data: bytes, limits: ImageLimits, *, budget: DecodeBudget | None = None
) -> PreparedImage:
    """Validate and normalise an image (CPU-bound: call it via `asyncio.to_thread`).

    With `budget`, decoding waits until the image's `decode_cost` fits in it."""
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
    except _DECODE_ERRORS as exc:
        raise ImageRejected(f"image could not be read: {exc}") from exc
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
            cost = decode_cost(image, limits.max_side)
            reservation = budget.reserve(cost) if budget else _unbudgeted()
            with reservation:
                orientation = image.getexif().get(_ORIENTATION)
                rgb = _shrink_to_rgb(image, limits.max_side)
            if orientation in _TRANSPOSE:
                rgb = rgb.transpose(_TRANSPOSE[orientation])
            out = io.BytesIO()
            rgb.save(out, format="JPEG", quality=limits.jpeg_quality, optimize=True)
        except _DECODE_ERRORS as exc:
            raise ImageRejected(f"image could not be decoded: {exc}") from exc
    return PreparedImage(
        data=out.getvalue(), width=rgb.width, height=rgb.height, original_format=original_format
    )


@contextmanager
def _unbudgeted() -> Iterator[None]:
    yield


def _shrink_to_rgb(image: Image.Image, max_side: int) -> Image.Image:
    """`image` decoded, at most `max_side` on its longer side, RGB with transparency on white.

    The decoded image is shrunk in its own mode (which needs no full-size copy for L and
    RGB); other modes are converted first. The box is square, so shrinking before the EXIF
    rotation gives the same size as after it."""
    image.load()
    work = image
    if work.mode not in _SHRINKS_AS_IS | _PREMULTIPLIED:
        transparent = "transparency" in work.info or work.mode in ("PA", "La", "RGBa")
        work = work.convert("RGBA" if transparent else "RGB")
        image.close()  # the decoded original is not needed any more
    if max(work.size) > max_side:
        work.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return _to_rgb(work)


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
