"""Background work (taskiq tasks, the outbox relay, the scheduler): see issue 4."""
