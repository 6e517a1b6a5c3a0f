"""CORS: Trellis' defaults, or the rules of `http.cors` in `langgraph.json`.

As the official server (`langgraph_api.server`, `global_middleware`): without `http.cors`
the defaults apply (`CORS_ORIGINS`, credentials, any method and header); with it, Starlette's
`CORSMiddleware` takes its keys as they are (its own defaults for the others: GET only, no
headers, no credentials, `max_age` 600), and `allow_origins` falls back to `CORS_ORIGINS`
when the section does not set it (`langgraph_api.config`: `CORS_ALLOW_ORIGINS`). Keys
Starlette does not take are dropped (reported at startup by `config_keys`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from server.core.settings import Settings
from server.graph_host.config_keys import CORS

EXPOSED_HEADERS = [
    "content-location",
    "location",
    "x-pagination-next",
    "x-pagination-total",
    "x-request-id",
]
"""Response headers the default rules let a browser read."""


def cors_options(settings: Settings, section: object) -> dict[str, Any]:  # Any: kwargs
    """`CORSMiddleware`'s arguments: the defaults, or those of an `http.cors` section."""
    if not isinstance(section, Mapping):
        return {
            "allow_origins": settings.cors_origins,
            "allow_credentials": True,
            "allow_methods": ["*"],
            "allow_headers": ["*"],
            "expose_headers": EXPOSED_HEADERS,
        }
    # Any: each argument has its own type; Starlette checks them.
    options: dict[str, Any] = {name: section[name] for name in CORS if name in section}
    options.setdefault("allow_origins", settings.cors_origins)
    return options


def allowed_origins(settings: Settings, section: object) -> list[str]:
    """The origins the CORS rules allow by name (for the `none`-mode origin check)."""
    return list(cors_options(settings, section)["allow_origins"])


def install(app: FastAPI, settings: Settings, section: object) -> None:
    """Add the CORS middleware; private-network preflights are allowed, as before."""
    app.add_middleware(
        CORSMiddleware, allow_private_network=True, **cors_options(settings, section)
    )
