from prometheus_client import Counter

DECISIONS = Counter("medassist_eligibility_decisions_total", "Screening decisions", ["reason", "rescreened"])
