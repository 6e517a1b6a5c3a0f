"""Adapters around the served LangGraph graphs (named apart from the top-level `graphs/`).

registry.py      loads `langgraph.json`; compiles graphs (`AnyGraph`) with Trellis' saver and store,
                 builds factory graphs per access (`LoadedGraph.open`), keeps broken ones apart
config_keys.py   every langgraph.json key: supported, build-time (info) or warned, one line each
introspection.py graph drawings, subgraphs and JSON schemas
snapshot.py      a LangGraph StateSnapshot as the API's thread state
checkpointer_config.py  the `checkpointer` key of `langgraph.json` (thread TTL defaults, keep_last)
store_embedder.py  the embedder `store.index.embed` names (MiniLM, openai:, a user's function)
"""
