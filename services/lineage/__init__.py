"""Lineage service: a DuckDB graph of everything that produced everything."""
