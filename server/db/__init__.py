"""Persistence: every SQL statement Trellis runs lives here.

engine.py            the SQLAlchemy engine (Trellis' tables), hot-SQL helpers, `ping`
pool.py              the psycopg pool of LangGraph's checkpointer and store (quick recovery)
outages.py           which errors are infrastructure faults (retry the run, answer 503)
tables.py            Trellis' tables (SQLAlchemy Core)
migrate.py           Alembic migrations plus LangGraph's own `setup()`
migrations/          Alembic revisions (with the run queue's SQL functions)
assistant_rows.py    assistants and their versions
thread_rows.py       threads
run_rows.py          the run queue: insert, claim, leases and sweeps, finish, NOTIFY/LISTEN
approval_rows.py     approvals
owners.py            who owns a thread, run or assistant, and its metadata (authorization)
api_key_rows.py      API keys (hashes only)
checkpoints.py       the fenced checkpoint saver; thread copies, a rolled-back run's deletions
checkpoint_deltas.py list channels stored as the items they gained (row format, chains read back)
checkpoint_serde.py  the allowlisting checkpoint serializer
checkpoint_retention.py  pruning a thread to its last N checkpoints (deltas kept readable)
owner_store.py       LangGraph's store, scoped to an owner
trellis_store.py     LangGraph's store with TTLs hidden at once and semantic search without pgvector
store_sweeper.py     deletes expired store items, one process at a time, in bounded batches
"""
