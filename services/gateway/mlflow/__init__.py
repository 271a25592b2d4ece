"""MLflow-compatible tracking, artifact and model-registry API on the gateway.

``MLFLOW_TRACKING_URI=http://<gateway>`` (the default project) or ``http://<gateway>/mlflow/<project>``,
with ``MLFLOW_TRACKING_TOKEN=<cairn token>``. Each call is authenticated with the gateway's token
store, authorized by the caller's role in the project, and translated into calls to the registry,
metrics and artifacts services; errors come back in MLflow's shape. See docs/mlflow.md.
"""

from cairn.services.gateway.mlflow.routes import router

__all__ = ["router"]
