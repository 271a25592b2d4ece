"""Deployments service: environments, which model version serves where, replicas, traffic splits,
rollbacks; and the inference log's feedback and request queries."""
