"""``python -m cairn.services.monitor``: run the monitor service."""

from cairn.kernel.service import serve
from cairn.services.monitor.app import MonitorSettings, create_app

if __name__ == "__main__":
    settings = MonitorSettings()
    serve(create_app(settings), settings)
