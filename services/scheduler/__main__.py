"""``python -m cairn.services.scheduler``: run the scheduler service."""

from cairn.kernel.service import serve
from cairn.services.scheduler.app import SchedulerSettings, create_app

if __name__ == "__main__":
    settings = SchedulerSettings()
    serve(create_app(settings), settings)
