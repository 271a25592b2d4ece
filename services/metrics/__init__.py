"""Metrics service: metric batches through a JetStream stream into Parquet, with queries."""
