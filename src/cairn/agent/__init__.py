"""``cairn agent``: runs the scheduler's jobs on this machine (see docs/scheduler.md)."""
