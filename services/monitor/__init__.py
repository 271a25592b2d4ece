"""Monitor service: inference windows per deployment, reference profiles, drift, live
performance, alert rules and the alerts they fire."""
