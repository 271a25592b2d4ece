"""Pipelines service: runs pipelines (CI/CD for models) as event-sourced ``pipeline_run``
aggregates. A step that needs an agent is submitted to the scheduler as a job; gates, approvals,
register, promote and deploy are decided here. Only the pure core exists yet (``domain.py``,
``gates.py``, ``cache.py``); the app, API and store come next (docs/pipelines.md, "The engine")."""
