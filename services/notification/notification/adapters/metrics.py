from prometheus_client import Counter, Gauge

MESSAGES_WRITTEN = Counter("medassist_sms_written_total", "SMS written for an event", ["moment"])
MESSAGES_SENT = Counter("medassist_sms_sent_total", "SMS handed to the gateway", ["moment"])
MESSAGE_OUTCOMES = Counter("medassist_sms_outcomes_total", "SMS final outcomes", ["status"])
MESSAGES_WAITING = Gauge("medassist_sms_waiting", "SMS written and not yet handed to the gateway")
