"""The shared kernel: event envelope, event log client, projections, errors, settings, HTTP glue."""
