"""``python -m cairn.services.lineage``: run the lineage service."""

from cairn.kernel.service import serve
from cairn.services.lineage.app import LineageSettings, create_app

if __name__ == "__main__":
    settings = LineageSettings()
    serve(create_app(settings), settings)
