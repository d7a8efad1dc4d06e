"""Proof after the write: reconciliation of the table against what the source produces."""
