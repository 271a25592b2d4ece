"""Gateway: the one public port. Routes /api/v1/<service>/..., health, status, event stream."""
