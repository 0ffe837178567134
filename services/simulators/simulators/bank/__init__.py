"""A bank for local runs and tests: REST and ISO 20022, with injectable latency, errors, timeouts,
duplicate callbacks, closed accounts and name mismatches."""
