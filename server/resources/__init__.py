"""The resources routes serve beside runs: threads and assistants, each behind one service.

thread_service.py     ThreadService: threads, their state, history, copies and state updates
assistant_service.py  AssistantService: assistants, their versions and their graphs' schemas
"""
