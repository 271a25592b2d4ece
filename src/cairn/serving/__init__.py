"""Model serving: the runtime behind ``cairn serve`` and a deployment's replicas."""
