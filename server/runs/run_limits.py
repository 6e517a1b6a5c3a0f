"""RunLimits: the operator's bounds on what a caller may ask of one run.

A run's config and context are the caller's (or an assistant's, which a caller creates),
so each knob that sets how long a run keeps its slot has a ceiling set by the operator:
the graph steps (`config.recursion_limit`), the critic's revision rounds (`max_revisions`)
and its confidence threshold (a threshold above 1 is never met, so every round is spent),
and the run's duration. Requests over a ceiling are refused with 422 naming the field when
the run or assistant is created; executors clamp again, for rows written before a ceiling
was lowered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeGuard

from langchain_core.runnables import RunnableConfig

from server.core.errors import InvalidRequest
from server.core.settings import Settings
from server.core.types import Json

TIMEOUT_KEY = "run_timeout_seconds"
"""The `config.configurable` key an assistant (or a run) lowers its run timeout with."""


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class RunLimits:
    """Ceilings on caller-set run knobs, and the run timeout."""

    max_recursion_limit: int = 1000
    max_revisions: int = 5
    timeout_seconds: float = 3600.0
    """The default and the ceiling of a run's duration."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RunLimits:
        """The limits `RUN_MAX_RECURSION_LIMIT`, `RUN_MAX_REVISIONS`, `RUN_TIMEOUT_SECONDS` set."""
        return cls(
            max_recursion_limit=settings.run_max_recursion_limit,
            max_revisions=settings.run_max_revisions,
            timeout_seconds=settings.run_timeout_seconds,
        )

    def check(self, config: Json | None, context: Json | None) -> None:
        """Raise `InvalidRequest` naming the first field of `config` or `context` out of bounds."""
        problem = self.problem(config, context)
        if problem is not None:
            raise InvalidRequest(problem)

    def problem(self, config: Json | None, context: Json | None) -> str | None:
        """Why `config` / `context` ask too much of a run, or None."""
        config = config or {}
        limit = config.get("recursion_limit")
        if limit is not None and not (_is_int(limit) and 1 <= limit <= self.max_recursion_limit):
            return f"config.recursion_limit must be an integer from 1 to {self.max_recursion_limit}"
        configurable = config.get("configurable")
        knobs: list[tuple[str, Json]] = [("context", context or {})]
        if isinstance(configurable, dict):
            knobs.append(("config.configurable", configurable))
            timeout = configurable.get(TIMEOUT_KEY)
            if timeout is not None and not (
                _is_number(timeout) and 0 < timeout <= self.timeout_seconds
            ):
                return (
                    f"config.configurable.{TIMEOUT_KEY} must be a number of seconds above 0 "
                    f"and at most {self.timeout_seconds:g}"
                )
        for where, values in knobs:
            revisions = values.get("max_revisions")
            if revisions is not None and not (
                _is_int(revisions) and 0 <= revisions <= self.max_revisions
            ):
                return f"{where}.max_revisions must be an integer from 0 to {self.max_revisions}"
            threshold = values.get("confidence_threshold")
            if threshold is not None and not (_is_number(threshold) and 0 <= threshold <= 1):
                return f"{where}.confidence_threshold must be a number from 0 to 1"
        return None

    def clamp(self, config: RunnableConfig) -> RunnableConfig:
        """`config` with its recursion limit at most the ceiling (LangGraph's default if unset)."""
        limit = config.get("recursion_limit")
        if _is_int(limit) and limit > self.max_recursion_limit:
            return {**config, "recursion_limit": self.max_recursion_limit}
        return config

    def clamp_context(self, context: Json) -> Json:
        """`context` with its revision rounds and confidence threshold within bounds."""
        out = dict(context)
        revisions = out.get("max_revisions")
        if _is_int(revisions) and revisions > self.max_revisions:
            out["max_revisions"] = self.max_revisions
        threshold = out.get("confidence_threshold")
        if _is_number(threshold) and threshold > 1:
            out["confidence_threshold"] = 1.0
        return out

    def timeout_for(self, config: RunnableConfig) -> float:
        """How long a run with `config` may execute: what it asks, at most the ceiling."""
        asked = (config.get("configurable") or {}).get(TIMEOUT_KEY)
        if _is_number(asked) and 0 < asked < self.timeout_seconds:
            return float(asked)
        return self.timeout_seconds
