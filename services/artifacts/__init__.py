"""Artifact store service: content-addressed blobs, dataset versions, run artifacts, GC."""
