"""HTTP routes of the LangGraph Server API."""
