"""Versioned prompt templates: ``prompts/<name>/v<N>.md``, loaded by name and version.

This package owns every piece of text sent to a model or shown to a human
reviewer. Node code never inlines prompt text; it asks for a prompt by name,
formats it, and records ``(name, version)`` with the result so an answer can
be traced to the exact template that produced it.

Templates use ``string.Template`` placeholders (``$question`` / ``${question}``)
so JSON examples with braces need no escaping. A template may split into a
system part and a user part with a line that reads ``<!-- user -->``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template

__all__ = ["Prompt", "PromptNotFound", "available_prompts", "load_prompt"]

_ROOT = Path(__file__).resolve().parent
_VERSION_FILE = re.compile(r"^v(\d+)\.md$")
_USER_MARKER = "<!-- user -->"


class PromptNotFound(LookupError):
    """Raised when a prompt name or version has no template file."""


@dataclass(frozen=True)
class Prompt:
    """One version of a prompt template."""

    name: str
    version: int
    text: str

    def format(self, **variables: object) -> str:
        """Substitute every placeholder; a missing variable raises ``KeyError``."""
        return Template(self.text).substitute({k: str(v) for k, v in variables.items()})

    def split(self, **variables: object) -> tuple[str, str]:
        """Format and return ``(system, user)``; ``system`` is empty without a marker."""
        formatted = self.format(**variables)
        if _USER_MARKER not in formatted:
            return "", formatted.strip()
        system, user = formatted.split(_USER_MARKER, 1)
        return system.strip(), user.strip()

    @property
    def ref(self) -> str:
        """``name@vN``, the form recorded in logs and run metadata."""
        return f"{self.name}@v{self.version}"


def _versions(name: str) -> dict[int, Path]:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise PromptNotFound(f"invalid prompt name {name!r}")
    folder = _ROOT / name
    if not folder.is_dir():
        raise PromptNotFound(f"no prompt named {name!r}")
    found: dict[int, Path] = {}
    for path in folder.iterdir():
        match = _VERSION_FILE.match(path.name)
        if match:
            found[int(match.group(1))] = path
    if not found:
        raise PromptNotFound(f"prompt {name!r} has no versions")
    return found


@cache
def load_prompt(name: str, version: int | None = None) -> Prompt:
    """Load ``prompts/<name>/v<version>.md``; the highest version when ``version`` is None."""
    versions = _versions(name)
    chosen = max(versions) if version is None else version
    if chosen not in versions:
        raise PromptNotFound(f"prompt {name!r} has no version {chosen}")
    return Prompt(name=name, version=chosen, text=versions[chosen].read_text(encoding="utf-8"))


def available_prompts() -> dict[str, list[int]]:
    """Every prompt name with its versions, ascending."""
    return {
        path.name: sorted(_versions(path.name))
        for path in sorted(_ROOT.iterdir())
        if path.is_dir() and not path.name.startswith(("_", "."))
    }
