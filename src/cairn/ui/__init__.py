"""The web UI: its build (``dist/``) is package data that the gateway serves (docs/ui.md)."""
