"""A graph that cannot be imported: the server must say so for this graph and serve the
others."""

from __future__ import annotations

from a_package_nobody_installed import Model  # noqa: F401  # the deliberate failure
from langgraph.graph import StateGraph

graph = StateGraph(dict).compile()
