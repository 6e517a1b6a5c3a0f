"""A custom `langgraph_sdk.Auth` used by the security tests (tokens are `user-<name>`)."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(
    authorization: str | None, path: str, method: str
) -> Auth.types.MinimalUserDict:
    if not authorization or not authorization.startswith("Bearer user-"):
        raise Auth.exceptions.HTTPException(status_code=401, detail="who are you?")
    name = authorization.removeprefix("Bearer user-")
    return {
        "identity": name,
        "display_name": name.title(),
        "permissions": ["admin"] if name == "admin" else ["member"],
    }


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Any:
    """The platform's canonical rule: stamp the owner on writes, filter reads by it."""
    metadata = value.setdefault("metadata", {})
    if isinstance(metadata, dict):
        metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.threads.read
async def reads(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Any:
    """Reads are filtered by owner, as every other action; the user `banned` reads nothing."""
    if ctx.user.identity == "banned":
        return False
    return {"owner": ctx.user.identity}


@auth.on.threads.update
async def updates(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Any:
    """Updates may change metadata freely (so a test can move a thread out of the filter)."""
    return {"owner": ctx.user.identity}


@auth.on.threads.delete
async def deletes(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> bool:
    return "admin" in ctx.permissions


@auth.on.assistants
async def assistants(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> None:
    return None


@auth.on.threads.create_run
async def runs(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Any:
    """Denies runs whose input (or protocol answer) says "forbidden"; stamps the owner on
    the others (a value with no run arguments at all has nothing to stamp: it is how a body
    the server could not read reached handlers, allowed, before the body guard refused such
    bodies)."""
    kwargs = value["kwargs"]
    run_input = kwargs.get("input")
    if isinstance(run_input, dict) and run_input.get("text") == "forbidden":
        return False
    if kwargs.get("response") == "forbidden":  # a protocol `input.respond` answer
        return False
    if kwargs:
        value["metadata"]["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}
