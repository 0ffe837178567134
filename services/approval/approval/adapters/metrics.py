from prometheus_client import Counter, Gauge

CASES_OPENED = Counter("medassist_cases_opened_total", "Cases opened from calculations")
CASE_ACTIONS = Counter("medassist_case_actions_total", "Actions on cases", ["action", "to_state"])
QUEUE_DEPTH = Gauge("medassist_approval_queue_depth", "Open cases per sub-district and state",
                    ["subdistrict", "state"])
QUEUE_OLDEST = Gauge("medassist_approval_queue_oldest_seconds", "Age of the oldest open case",
                     ["subdistrict", "state"])
