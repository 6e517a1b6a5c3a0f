"""A user's custom app for `http.app`: routes beside Trellis', its own middleware and lifespan."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, WebSocket
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

STARTED: list[str] = []


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    STARTED.append("up")
    yield


app = FastAPI(lifespan=lifespan)


class Stamp(BaseHTTPMiddleware):
    """Marks every response, Trellis' routes' too (the official `middleware_first`)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-custom-middleware"] = "yes"
        return response


app.add_middleware(Stamp)


@app.get("/hello")
async def hello(request: Request) -> dict[str, object]:
    user = request.scope.get("user")
    return {
        "hello": "world",
        "user": getattr(user, "identity", None),
        "started": STARTED,
    }


@app.post("/hello")
async def hello_post(body: dict[str, object]) -> dict[str, object]:
    return {"echo": body}


@app.get("/info")
async def my_info() -> dict[str, str]:
    """Shadows Trellis' `/info`, as the official server lets it."""
    return {"custom": "info"}


@app.get("/ok")
async def my_ok() -> dict[str, str]:
    """Cannot shadow the health check."""
    return {"custom": "ok"}


@app.websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    user = websocket.scope.get("user")
    await websocket.send_json({"user": getattr(user, "identity", None)})
    await websocket.close()
