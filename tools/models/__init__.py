"""Model access for the built-in agents, behind the task-level ``ModelProvider`` protocol.

provider.py         ModelProvider: the tasks, their inputs, their typed results, ModelError
text.py             sentences, content words and ``[n]`` citations of plain text
offline_provider.py OfflineProvider: every task done deterministically, without a network
openai_provider.py  OpenAIProvider: the tasks on ChatOpenAI, with retries, fallback and cache

Import from the modules; this package re-exports nothing.
"""
