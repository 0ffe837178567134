"""An SMS gateway for local runs and tests: idempotency keys, single and batch sends, latency, errors, timeouts,
delivery reports."""
