from prometheus_client import Counter

SETTLEMENTS_ACCEPTED = Counter("medassist_settlements_accepted_total", "Settlements accepted (new)", ["hospital"])
SETTLEMENTS_DUPLICATE = Counter("medassist_settlements_duplicate_total", "Re-sent settlements absorbed", ["hospital"])
SETTLEMENTS_REVERSED = Counter("medassist_settlements_reversed_total", "Settlements reversed", ["hospital"])
