"""Authentication and authorization: who is calling, and what they may reach.

identity.py    Identity, the per-request current identity, what runs persist of it
api_keys.py    hashed API keys (`trellis keys ...`)
jwt_bearer.py  JWT verification against a cached, rotation-aware JWKS
custom.py      a `langgraph_sdk.Auth` object from `langgraph.json`
filters.py     authorization filters as JSONB containment
routes.py      (method, path) → resource, action, rate class, streaming
middleware.py  the Authenticate and CustomAuthorize ASGI middlewares
cli.py         `trellis keys`, and the loopback-only rule for AUTH_MODE=none
"""
