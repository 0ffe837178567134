"""An SMS gateway for local runs and tests: idempotency keys, latency, errors, timeouts, delivery reports."""
