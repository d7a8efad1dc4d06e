"""carve scaffold: a draft mapping from a live schema (jobs.scaffold.catalog reads it,
jobs.scaffold.draft writes the YAML)."""
