"""Run execution: creating runs, executing them, and their event streams.

manager.py   RunManager: creates runs as queue rows and follows them to completion
executor.py  Executor: claims queued runs, executes them under a lease, records outcomes
hooks.py     RunHooks: what runs call inside their transactions (approvals implement it)
listener.py  Postgres LISTEN: wake-ups, completions, cancellations
events.py    the event bus: per-run event streams, in memory or in Redis
stream.py    graph.astream parts → run events
webhooks.py  run-completion webhooks
"""
