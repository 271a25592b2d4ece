"""Cluster mode's NATS side: a CA and host certificates (certs), and the configs, credentials and
env files of a NATS cluster and its leaf sites (config). See docs/cluster.md."""
