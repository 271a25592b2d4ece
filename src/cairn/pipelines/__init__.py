"""Pipelines: CI/CD for machine learning. Triggers (git pushes, events of record, schedules), the
pipeline definition and its validation; the engine that runs them builds on these pure pieces."""
