"""Serving: Athena-dialect SQL over the curated lake, locally (DuckDB) or on Athena."""
