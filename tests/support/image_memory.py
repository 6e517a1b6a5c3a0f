"""Peak memory of decoding many images at once, measured in a process of its own.

`python -m tests.support.image_memory IMAGE COUNT MAX_PIXELS BUDGET_MB [IMAGES_MODULE]`
runs `preprocess` on the bytes of IMAGE in COUNT threads at once (BUDGET_MB 0: no decode
budget) and prints JSON: how far the peak resident set rose above where it stood before
(`growth_mb`, Linux only), the most of the budget reserved at once, how many images were
prepared, and the errors of the others. IMAGES_MODULE
(a file path) measures another version of `tools/images.py`, such as main's.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any


def _status_kb(field: str) -> int:
    """`VmRSS` (resident now) or `VmHWM` (its peak) of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _images_module(path: str | None) -> ModuleType:
    if path is None:
        import tools.images

        return tools.images
    spec = importlib.util.spec_from_file_location("images_under_test", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def measure(
    data: bytes, count: int, max_pixels: int, budget_mb: int, images: ModuleType
) -> dict[str, Any]:
    """Prepare `data` `count` times at once; the peak RSS growth and the outcomes."""
    limits = images.ImageLimits(max_pixels=max_pixels)
    extra: dict[str, Any] = {}
    if budget_mb:
        extra["budget"] = images.DecodeBudget(budget_mb * 2**20, wait_seconds=600)
        assert images.return_large_frees_to_system()  # as the toolbox does
    start = threading.Barrier(count)

    def one(_: int) -> str | None:
        start.wait()
        try:
            images.preprocess(data, limits, **extra)
        except images.ImageRejected as error:
            return str(error)
        return None

    # The peak starts from here (getrusage's ru_maxrss would not do: it keeps the peak of
    # the process that forked this one).
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kb("VmRSS")
    with ThreadPoolExecutor(max_workers=count) as pool:
        outcomes = list(pool.map(one, range(count)))
    peak = _status_kb("VmHWM")
    errors = [o for o in outcomes if o is not None]
    budget = extra.get("budget")
    return {
        "growth_mb": round((peak - before) / 1024, 1),
        "reserved_peak_mb": round(budget.peak / 2**20, 1) if budget else None,
        "prepared": count - len(errors),
        "errors": errors[:3],
    }


def main(argv: list[str]) -> None:
    image, count, max_pixels, budget_mb = argv[:4]
    images = _images_module(argv[4] if len(argv) > 4 else None)
    data = Path(image).read_bytes()
    print(json.dumps(measure(data, int(count), int(max_pixels), int(budget_mb), images)))


if __name__ == "__main__":
    main(sys.argv[1:])
