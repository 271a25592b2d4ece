"""The scheduler service: queues, jobs, attempts and agents."""
