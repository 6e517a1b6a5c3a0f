"""The resources routes serve beside runs: threads and assistants, each behind one service.

thread_service.py     ThreadService: threads, their state, history, copies and state updates
thread_sweeper.py     ThreadSweeper: expired thread TTLs and keep-last-N retention
assistant_service.py  AssistantService: assistants, their versions and their graphs' schemas
"""
