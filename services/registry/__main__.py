"""``python -m cairn.services.registry``: run the registry service."""

from cairn.kernel.service import serve
from cairn.services.registry.app import RegistrySettings, create_app

if __name__ == "__main__":
    settings = RegistrySettings()
    serve(create_app(settings), settings)
