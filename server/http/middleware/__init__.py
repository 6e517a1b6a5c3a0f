"""ASGI middlewares, one per module.

request_context.py  request id and the access log
headers.py          security headers (CSP, HSTS)
limits.py           rate limits, body size and depth, request timeouts
authenticate.py     resolves the caller's identity; custom authorization handlers
"""
