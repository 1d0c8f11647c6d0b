"""Deduplication stages: exact (this issue), MinHash and semantic (later)."""
