"""Relational sources: connections (jobs.sources.connections), one dialect module per engine found
by URL scheme (jobs.sources.registry), and the JDBC reader (jobs.sources.jdbc)."""
