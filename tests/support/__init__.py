"""What the tests share.

servers.py      scratch databases, free ports, Trellis in this loop or in a subprocess
api.py          waiting for runs and logs, error-body checks, a raw SSE parser
approvals.py    approval calls and a webhook receiver
security.py     settings and apps for the auth modes, API keys
openai_fake.py  an OpenAI-compatible server on loopback (the only fake: the model)
pg_cluster.py   a password-protected Postgres cluster of a test's own
boom.py         a class a hostile checkpoint names (it must never be instantiated)
graphs/         the graphs the tests serve (`langgraph.json`)
auth_app/       a `langgraph.json` with a custom `langgraph_sdk.Auth`
"""
