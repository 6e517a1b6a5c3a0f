"""Operator commands beside serve and worker.

ingest.py    `trellis ingest`: index documents for the built-in assistant
embedded.py  an embedded Postgres when none answers (development), stopped with the last process
keys.py      `trellis keys`, and the loopback-only rule for AUTH_MODE=none
doctor.py    `trellis doctor`: one line per check of what Trellis needs
health.py    component checks (Postgres, migrations, Redis, Qdrant, graphs) for /ready and doctor
"""
