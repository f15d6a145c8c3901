"""Realtime: the transactional outbox, its relay, and the envelope subscribers decode."""
