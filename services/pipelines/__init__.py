"""Pipelines service: runs pipelines (CI/CD for models) as event-sourced ``pipeline_run``
aggregates. A step that needs an agent is submitted to the scheduler as a job; gates, approvals,
register, promote and deploy are decided here. The pure core is ``domain.py``, ``gates.py`` and
``cache.py``; the service is ``app.py`` (settings, background parts), ``api.py``, ``starting.py``
(how every run starts), ``store.py``/``projection.py``/``facts.py`` (its read model)
(docs/pipelines.md, "The service")."""
