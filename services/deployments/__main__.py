"""``python -m cairn.services.deployments``: run the deployments service."""

from cairn.kernel.service import serve
from cairn.services.deployments.app import DeploymentsSettings, create_app

if __name__ == "__main__":
    settings = DeploymentsSettings()
    serve(create_app(settings), settings)
