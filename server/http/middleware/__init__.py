"""ASGI middlewares, one per module.

request_context.py  request id and the access log
headers.py          security headers (CSP, HSTS)
local_only.py       AUTH_MODE=none: refuses cross-site requests and foreign Host names
limits.py           rate limits, body and field sizes, request timeouts
authenticate.py     resolves the caller's identity (with `server.auth.authenticators`)
authorize.py        custom mode: the `@auth.on` handlers of a `langgraph_sdk.Auth` object
disabled.py         404 for the route groups `http.disable_*` removes
"""
