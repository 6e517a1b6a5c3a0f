"""A class whose construction has a side effect: checkpoints must never revive it."""

from __future__ import annotations

from pathlib import Path


class Boom:
    def __init__(self, path: str = "", *args: object, **kwargs: object) -> None:
        Path(path).write_text("constructed")
