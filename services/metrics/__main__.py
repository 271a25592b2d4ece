"""``python -m cairn.services.metrics``: run the metrics service."""

from cairn.services.metrics.app import MetricsSettings, create_app

from cairn.kernel.service import serve

if __name__ == "__main__":
    settings = MetricsSettings()
    serve(create_app(settings), settings)
