"""Authentication and authorization: who is calling, and what they may reach.

identity.py        Identity, the per-request current identity, what runs persist of it
authenticators.py  credentials → Identity, one authenticator per AUTH_MODE (no ASGI plumbing)
api_keys.py        hashed API keys (`trellis keys ...`)
jwt_bearer.py      JWT verification against a cached, rotation-aware JWKS
custom.py          a `langgraph_sdk.Auth` object from `langgraph.json`
filters.py         authorization filters as JSONB containment

The ASGI middlewares that use them are `server.http.middleware.authenticate` and `authorize`.
"""
