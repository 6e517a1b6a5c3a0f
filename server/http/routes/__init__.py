"""HTTP routes of the LangGraph Server API, one module per resource.

assistants.py  /assistants
threads.py     /threads, their state and history
runs.py        /threads/{id}/runs and stateless /runs, streamed, waited on, cancelled
store.py       /store: LangGraph's long-term memory, scoped to the caller
approvals.py   /approvals: interrupts as human decisions
documents.py   /documents: ingestion for the built-in assistant
meta.py        /ok, /info and the other server-level routes
"""
