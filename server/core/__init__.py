"""What every layer uses; imports nothing else of the server.

settings.py  Settings: the only reader of the environment
errors.py    the domain error tree (no HTTP)
ids.py       UUIDv7 and id parsing
encoding.py  orjson for the wire and JSONB
schemas.py   request bodies of the API (pydantic)
types.py     JSON aliases, status literals, resource rows as TypedDicts
audit.py     security events
logging.py   log set-up: JSON or text lines
store_config.py  the `store` key of a langgraph.json (TTLs, index), validated
metrics.py   Prometheus metrics (`trellis_*`): definitions, pool gauges, rendering
tracing.py   OpenTelemetry spans (optional `otel` extra; off and free by default)
"""
