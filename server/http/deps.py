"""FastAPI dependencies as `Annotated` aliases, so route signatures read like prose.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker
thread, a thread hop per dependency per request for what is an attribute lookup.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from server.auth.identity import ANONYMOUS, ANONYMOUS_IDENTITY, Identity
from server.resources.assistant_service import AssistantService
from server.resources.thread_service import ThreadService
from server.runs.manager import RunManager
from server.services import Services

__all__ = ["ANONYMOUS", "IdentityDep", "OwnerDep", "RunsDep", "ServicesDep"]


async def get_services(request: Request) -> Services:
    """The process' services, opened by the lifespan."""
    services: Services = request.app.state.services
    return services


async def get_runs(request: Request) -> RunManager:
    """The run manager."""
    services: Services = request.app.state.services
    return services.runs


async def get_threads(request: Request) -> ThreadService:
    """The thread service."""
    services: Services = request.app.state.services
    return services.threads


async def get_assistants(request: Request) -> AssistantService:
    """The assistant service."""
    services: Services = request.app.state.services
    return services.assistants


async def get_owner(request: Request) -> str:
    """The identity that owns what this request creates and sees."""
    owner: str = getattr(request.state, "owner", ANONYMOUS)
    return owner


async def get_identity(request: Request) -> Identity:
    """The caller's identity (anonymous while authentication is off)."""
    identity: Identity = getattr(request.state, "identity", ANONYMOUS_IDENTITY)
    return identity


ServicesDep = Annotated[Services, Depends(get_services)]
RunsDep = Annotated[RunManager, Depends(get_runs)]
ThreadsDep = Annotated[ThreadService, Depends(get_threads)]
AssistantsDep = Annotated[AssistantService, Depends(get_assistants)]
OwnerDep = Annotated[str, Depends(get_owner)]
IdentityDep = Annotated[Identity, Depends(get_identity)]
