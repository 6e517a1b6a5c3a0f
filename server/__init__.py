"""Trellis' server: the LangGraph Server API over Postgres, Redis and the graphs it serves.

cli.py              `trellis`: serve, worker, migrate, ingest, keys, doctor
worker.py           a worker process: claims and executes queued runs
services.py         the composition root: opens every pool and service, closes them in reverse
builtin_toolbox.py  settings → the toolbox of the built-in graph (models, Qdrant, caches)

http/        the FastAPI app: routes, middleware, SSE, the one error mapping
ops/         commands beside serve and worker: ingest, embedded Postgres, API keys
resources/   threads and assistants, each behind a service the routes call
approvals/   interrupts as human decisions over the API
runs/        run creation, the executor, leases, events and their streams
auth/        who is calling: identities, API keys, JWT, custom `langgraph_sdk.Auth`
graph_host/  the served graphs: loading `langgraph.json`, schemas, state snapshots
db/          every SQL statement: engine, pool, tables, migrations, rows, checkpoints, store
core/        settings, the error tree, ids, encoding, request schemas, logging

Imports flow down that list (`make lint` runs the import-linter contracts in pyproject.toml).
"""
