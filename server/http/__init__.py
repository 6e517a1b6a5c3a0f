"""The HTTP layer: the only code that knows FastAPI and ASGI.

app.py             create_app(settings): routes, middleware and the lifespan
deps.py            FastAPI dependencies as `Annotated` aliases
error_handlers.py  the one mapping of errors to JSON responses
responses.py       JSONResponse encoded with Trellis' serializer
sse.py             SSE responses of run streams
docs.py            /docs and /redoc on Swagger UI and ReDoc assets served locally
security.py        wires authentication, authorization and limits into the app
route_table.py     (method, path) → resource, action, rate class, streaming
asgi.py            what the middlewares share: JSON refusals, client address, body replay
wire.py            the HTTP/1.1 protocol uvicorn serves with: request heads bounded (431)
cors.py            CORS: the defaults or `http.cors` of langgraph.json
custom_app.py      `http.app`: the user's Starlette/FastAPI routes beside Trellis' routes
middleware/        one ASGI middleware per module
routes/            one module per resource of the LangGraph Server API
"""
