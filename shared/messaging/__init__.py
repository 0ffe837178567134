"""Reliable messaging: transactional outbox + relay, inbox dedupe, and the one consumer runner."""
