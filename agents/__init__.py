"""The built-in assistant's agents: one module per node, plus its state and context.

state.py       the graph's state, its input schema, reducers, and what nodes return
context.py     Context: per-run knobs read through ``runtime.context``
turn.py        what the nodes share: the current question, images, turn resets, events
supervisor.py  the supervisor node: picks the next agent, hands off with ``Command``
retriever.py   the retriever node: rewrite, search, draft a cited answer
vision.py      the vision node: read the question's image, draft an answer about it
critic.py      the critic and human_review nodes: confidence, revise, or ask a human

Nodes reach infrastructure only through ``tools.toolbox.current_toolbox()``.
"""
