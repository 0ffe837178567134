"""Prometheus metrics shared by the messaging layer; services add their own beside these."""

from prometheus_client import Counter, Gauge

EVENTS_CONSUMED = Counter("medassist_events_consumed_total", "Events applied", ["service", "topic"])
EVENTS_DUPLICATE = Counter("medassist_events_duplicate_total", "Redelivered events skipped by the inbox",
                           ["service", "topic"])
HANDLER_RETRIES = Counter("medassist_handler_retries_total", "Batch handler retries", ["service"])
DEAD_LETTERS = Counter("medassist_dead_letters_total", "Events sent to a dead-letter topic", ["service", "topic"])
CONSUMER_LAG = Gauge("medassist_consumer_lag", "Messages behind the high watermark", ["service", "topic", "partition"])
OUTBOX_PUBLISHED = Counter("medassist_outbox_published_total", "Outbox events published", ["service"])
OUTBOX_BACKLOG = Gauge("medassist_outbox_backlog", "Outbox events not yet published", ["service"])
OUTBOX_OLDEST = Gauge("medassist_outbox_oldest_seconds", "Age of the oldest outbox event not yet published",
                      ["service"])
DB_STATEMENTS = Counter("medassist_db_statements_total",
                        "SQL statements the code sent (an executemany counts once; pings and BEGIN/COMMIT do not)",
                        ["service"])
