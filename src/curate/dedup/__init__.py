"""Deduplication stages: `exact.ExactDedup` (normalized text hash), `minhash.MinHashDedup`
(near-duplicates by MinHash-LSH) and `semantic.SemanticDedup` (embedding neighbours); the
clustering, keeper rules and reference mode they share live in `clusters`."""
