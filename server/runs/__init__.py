"""Run execution: the run manager, the executor that claims queued runs, and their event streams."""
