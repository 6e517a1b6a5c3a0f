"""The built-in assistant's agents: one module per node, plus its state and context.

``state`` and ``context`` define the graph's data; ``supervisor``, ``retriever``,
``vision`` and ``critic`` are the nodes; ``turn`` holds what they share. Nodes
reach infrastructure only through ``tools.toolbox.current_toolbox()``.
"""
