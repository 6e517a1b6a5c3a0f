"""Persistence of Trellis' own resources: assistants, threads and runs."""
