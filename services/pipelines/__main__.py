"""``python -m cairn.services.pipelines``: run the pipelines service."""

from cairn.kernel.service import serve
from cairn.services.pipelines.app import PipelinesSettings, create_app

if __name__ == "__main__":
    settings = PipelinesSettings()
    serve(create_app(settings), settings)
