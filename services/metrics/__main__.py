"""``python -m cairn.services.metrics``: run the metrics service."""

from cairn.kernel.service import serve
from cairn.services.metrics.app import MetricsSettings, create_app

if __name__ == "__main__":
    settings = MetricsSettings()
    serve(create_app(settings), settings)
