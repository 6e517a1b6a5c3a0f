"""Graphs served by Trellis, loaded by path from ``langgraph.json`` (the server never imports them).

assistant.py  the built-in assistant: supervisor, retriever, vision, critic, human review
"""
