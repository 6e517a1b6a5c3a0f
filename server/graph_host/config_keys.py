"""What Trellis does with each key of a `langgraph.json`: one table, one line per key at startup.

Every top-level key of the official schema (`langgraph_cli.schemas.Config`, the keys
`langgraph_cli.config._KNOWN_CONFIG_KEYS` recognizes) and every `auth.*`, `http.*` and
`http.cors.*` sub-key (`langgraph_api.config.schemas.AuthConfig`, `HttpConfig`, `CorsConfig`)
has a treatment:

* `supported`: Trellis does what the official server does with it; no line.
* `build`: it shapes the image `langgraph build` makes, not a running server; one info line.
* `warned`: Trellis does not do what it asks; one warning line naming the key and why.

A key the schema does not know gets one warning line too. Nothing is silently ignored.
`checkpointer` and `store` are listed as supported here; their sub-keys are read (and
reported) by the modules that apply them.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

log = logging.getLogger("trellis.config")


class ConfigKeyError(Exception):
    """A key of `langgraph.json` has a value Trellis cannot apply; the message is one line
    naming the file, the key and what was expected."""


Treatment: TypeAlias = Literal["supported", "build", "warned"]
"""What Trellis does with a key: applies it, leaves it to image builds, or warns it does not."""


@dataclass(frozen=True)
class KeyRule:
    """How one key is treated, and why (the text of its startup line)."""

    treatment: Treatment
    why: str


def _build(what: str) -> KeyRule:
    return KeyRule("build", f"{what}; it applies to image builds (`langgraph build`), not here")


TOP_LEVEL: dict[str, KeyRule] = {
    "$schema": KeyRule("supported", "an editor hint; nothing to apply"),
    "graphs": KeyRule("supported", "the graphs served"),
    "env": KeyRule("supported", "applied before any graph is imported"),
    "dependencies": KeyRule(
        "supported", "local paths are importable; packages must be installed in Trellis' venv"
    ),
    "auth": KeyRule("supported", "custom auth with AUTH_MODE=custom"),
    "http": KeyRule("supported", "custom routes, CORS and disabled route groups"),
    "checkpointer": KeyRule("supported", "thread TTL and sweeps"),
    "store": KeyRule("supported", "store TTL and semantic index"),
    "python_version": _build("the image's Python version"),
    "node_version": _build("the image's Node.js version"),
    "api_version": _build("the langgraph-api version of the image"),
    "base_image": _build("the image's base image"),
    "image_distro": _build("the image's Linux distribution"),
    "pip_config_file": _build("pip's configuration in the image"),
    "pip_installer": _build("the installer used in the image"),
    "source": _build("how the image installs the project"),
    "dockerfile_lines": _build("extra Dockerfile lines"),
    "keep_pkg_tools": _build("packaging tools kept in the image"),
    "_INTERNAL_docker_tag": _build("the image's tag"),
    "project_root": _build("a legacy key (now `source.root`)"),
    "package": _build("a legacy key (now `source.package`)"),
    "encryption": KeyRule(
        "warned",
        "custom at-rest encryption is not supported: Trellis stores data unencrypted "
        "(encrypt the Postgres volume instead)",
    ),
    "priority": KeyRule(
        "warned",
        "custom run priority is not supported: runs start in creation order, shared between owners",
    ),
    "webhooks": KeyRule(
        "warned",
        "the webhook URL policy, headers and fields are not applied: Trellis uses its "
        "WEBHOOK_* settings",
    ),
    "ui": KeyRule("warned", "generative UI components are not served by Trellis"),
    "ui_config": KeyRule("warned", "generative UI components are not served by Trellis"),
}
"""Top-level keys of the official `langgraph.json` schema."""

AUTH: dict[str, KeyRule] = {
    "path": KeyRule("supported", "the `Auth` object, used with AUTH_MODE=custom"),
    "disable_studio_auth": KeyRule(
        "supported", "Trellis has no LangSmith Studio auth: every request meets the handler"
    ),
    "allow_langsmith_api_keys": KeyRule(
        "warned", "LangSmith API keys are not checked by Trellis: requests meet the handler only"
    ),
    "openapi": KeyRule("warned", "the security schemes are not merged into Trellis' /openapi.json"),
    "cache": KeyRule("warned", "auth decisions are not cached: the handler runs on every request"),
}
"""`auth.*` keys (`langgraph_api.config.schemas.AuthConfig`)."""

HTTP: dict[str, KeyRule] = {
    "app": KeyRule("supported", "the custom app's routes are served beside Trellis' routes"),
    "enable_custom_route_auth": KeyRule("supported", "Trellis' auth on the custom routes"),
    "middleware_order": KeyRule(
        "supported", "the custom app's middleware wraps every route (`middleware_first`)"
    ),
    "cors": KeyRule("supported", "the CORS rules of every route"),
    "disable_assistants": KeyRule("supported", "/assistants routes answer 404"),
    "disable_threads": KeyRule("supported", "/threads routes answer 404"),
    "disable_runs": KeyRule("supported", "run routes answer 404"),
    "disable_store": KeyRule("supported", "/store routes answer 404"),
    "disable_meta": KeyRule("supported", "/info, /metrics and the docs answer 404"),
    "disable_webhooks": KeyRule("supported", "run webhooks are not sent"),
    "disable_event_streaming": KeyRule("supported", "the thread protocol routes answer 404"),
    "disable_ui": KeyRule("supported", "Trellis serves no /ui routes"),
    "disable_mcp": KeyRule("supported", "Trellis serves no /mcp routes"),
    "disable_a2a": KeyRule("supported", "Trellis serves no /a2a routes"),
    "mount_prefix": KeyRule(
        "warned", "routes are served at the root: put a reverse proxy in front to add a prefix"
    ),
    "configurable_headers": KeyRule(
        "warned", "request headers are not copied into a run's `config.configurable`"
    ),
    "logging_headers": KeyRule(
        "warned", "nothing to filter: Trellis' access log records no request headers"
    ),
}
"""`http.*` keys (`langgraph_api.config.schemas.HttpConfig`)."""

CORS: dict[str, KeyRule] = {
    name: KeyRule("supported", "as Starlette's CORSMiddleware takes it")
    for name in (
        "allow_origins",
        "allow_methods",
        "allow_headers",
        "allow_credentials",
        "allow_origin_regex",
        "expose_headers",
        "max_age",
    )
}
"""`http.cors.*` keys (`langgraph_api.config.schemas.CorsConfig`, Starlette's arguments)."""

SECTIONS: dict[str, dict[str, KeyRule]] = {
    "": TOP_LEVEL,
    "auth": AUTH,
    "http": HTTP,
    "http.cors": CORS,
}
"""Each table by the dotted path of the object it describes."""


@dataclass(frozen=True)
class ConfigNote:
    """One startup line about one key."""

    level: int
    key: str
    """The dotted key (`http.mount_prefix`)."""
    message: str


def _notes_for(section: str, value: object, source: str) -> list[ConfigNote]:
    table = SECTIONS[section]
    if not isinstance(value, Mapping):
        return []
    notes: list[ConfigNote] = []
    for name in value:
        key = f"{section}.{name}" if section else str(name)
        rule = table.get(name)
        if rule is None:
            close = difflib.get_close_matches(str(name), table, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            notes.append(
                ConfigNote(
                    logging.WARNING,
                    key,
                    f"{source}: unknown key {key!r}{hint}: not in the official schema, ignored",
                )
            )
            continue
        if rule.treatment == "build":
            notes.append(ConfigNote(logging.INFO, key, f"{source}: {key!r}: {rule.why}"))
        elif rule.treatment == "warned":
            notes.append(ConfigNote(logging.WARNING, key, f"{source}: {key!r} ignored: {rule.why}"))
    return notes


def config_notes(raw: Mapping[str, object], source: str = "langgraph.json") -> list[ConfigNote]:
    """The startup lines of a parsed `langgraph.json`: one per build-time, warned or unknown key."""
    notes = _notes_for("", raw, source)
    notes += _notes_for("auth", raw.get("auth"), source)
    http = raw.get("http")
    notes += _notes_for("http", http, source)
    if isinstance(http, Mapping):
        notes += _notes_for("http.cors", http.get("cors"), source)
        if http.get("middleware_order") == "auth_first":
            notes.append(
                ConfigNote(
                    logging.WARNING,
                    "http.middleware_order",
                    f"{source}: 'http.middleware_order' \"auth_first\" is not supported: "
                    "the custom app's middleware runs before authentication (middleware_first)",
                )
            )
    return notes


def report_config_keys(
    raw: Mapping[str, object], source: str = "langgraph.json"
) -> list[ConfigNote]:
    """Log the startup line of every key that needs one (`source` names the file); returns them."""
    notes = config_notes(raw, source)
    for note in notes:
        log.log(note.level, note.message, extra={"config_key": note.key})
    return notes


_FLAGS = [name for name in HTTP if name.startswith(("disable_", "enable_"))]
_CORS_LISTS = ("allow_origins", "allow_methods", "allow_headers", "expose_headers")


def validate_http(http: object, source: str = "langgraph.json") -> None:
    """Refuse an `http` section whose values the official schema refuses (`HttpConfig`,
    `CorsConfig`): flags that are not booleans, CORS values of the wrong type."""
    if http is None:
        return
    if not isinstance(http, Mapping):
        raise ConfigKeyError(f"{source}: 'http' must be an object, got {type(http).__name__}")
    for name in _FLAGS:
        if name in http and not isinstance(http[name], bool):
            raise ConfigKeyError(f"{source}: 'http.{name}' must be true or false")
    cors = http.get("cors")
    if cors is None:
        return
    if not isinstance(cors, Mapping):
        raise ConfigKeyError(f"{source}: 'http.cors' must be an object")
    for name in _CORS_LISTS:
        value = cors.get(name)
        if name in cors and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise ConfigKeyError(f"{source}: 'http.cors.{name}' must be a list of strings")
    if "allow_credentials" in cors and not isinstance(cors["allow_credentials"], bool):
        raise ConfigKeyError(f"{source}: 'http.cors.allow_credentials' must be true or false")
    max_age = cors.get("max_age")
    if "max_age" in cors and (
        not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 0
    ):
        raise ConfigKeyError(f"{source}: 'http.cors.max_age' must be a whole number of seconds")
    if "allow_origin_regex" in cors:
        pattern = cors["allow_origin_regex"]
        try:
            re.compile(pattern if isinstance(pattern, str) else "(")
        except re.error as exc:
            raise ConfigKeyError(
                f"{source}: 'http.cors.allow_origin_regex' must be a regular expression: {exc}"
            ) from exc
