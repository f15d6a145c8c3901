"""Realtime delivery inside an API process: the fan-out hub over broadcaster."""
