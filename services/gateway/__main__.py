"""``python -m cairn.services.gateway``: run the gateway."""

from cairn.kernel.service import serve
from cairn.services.gateway.app import GatewaySettings, create_app

if __name__ == "__main__":
    settings = GatewaySettings()
    serve(create_app(settings), settings)
