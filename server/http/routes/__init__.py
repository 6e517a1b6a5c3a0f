"""HTTP routes of the LangGraph Server API, one module per resource.

assistants.py  /assistants
threads.py     /threads, their state and history
runs.py        /threads/{id}/runs and stateless /runs, streamed, waited on, cancelled
thread_streams.py  /threads/{id}/stream, /commands, /stream/events: every run of a thread
store.py       /store: LangGraph's long-term memory, scoped to the caller
approvals.py   /approvals: interrupts as human decisions
documents.py   /documents: ingestion for the built-in assistant
meta.py        /ok, /info and the other server-level routes
"""

AS_RETURNED = object
"""`response_model` of the routes whose annotation is a TypedDict (or a list of them): left
to itself, FastAPI would build a model from the annotation and validate every answer against
it (refusing the partial objects a `select` asks for). With `object`, as with the untyped
annotations these routes had, pydantic's core serialises the value as it is. (`None` would
switch to FastAPI's slower `jsonable_encoder`.)"""
