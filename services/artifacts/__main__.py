"""``python -m cairn.services.artifacts``: run the artifact store service."""

from cairn.kernel.service import serve
from cairn.services.artifacts.app import ArtifactsSettings, create_app

if __name__ == "__main__":
    settings = ArtifactsSettings()
    serve(create_app(settings), settings)
