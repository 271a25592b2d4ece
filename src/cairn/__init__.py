"""Cairn: an open-source MLOps platform."""
__version__ = "0.1.0"
