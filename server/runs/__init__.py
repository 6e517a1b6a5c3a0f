"""Run execution: creating runs, executing them, and their event streams.

manager.py        RunManager: creates runs as queue rows and follows them to completion
executor.py       Executor: claims queued runs, executes them under a lease, records outcomes
run_config.py     a claimed run's RunnableConfig and graph input (pure)
run_limits.py     RunLimits: the operator's ceilings on run knobs, and the run timeout
lease.py          the lease heartbeat (an OS thread) and the sweep of lapsed leases
signals.py        NOTIFY channel names and in-process completions
hooks.py          RunHooks: what runs call inside their transactions (approvals implement it)
listener.py       Postgres LISTEN: wake-ups, completions, cancellations
events.py         the event bus: its protocol, event ids, and the in-memory bus
redis_events.py   the Redis event bus: Streams, one writer, a pub/sub live feed
stream.py         graph.astream parts → run events
thread_stream.py  a thread's stream: the events of its runs, one run after the other
thread_protocol.py  the thread event streaming protocol: filters, protocol events, commands
webhooks.py       run-completion webhooks
run_telemetry.py  node, model and tool metrics and spans of a run (a LangChain callback
                  handler), and the tools layer's telemetry hooks as metrics
"""
