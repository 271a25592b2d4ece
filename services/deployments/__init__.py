"""The deployments service: environments, which model version serves where, replicas, splits."""
