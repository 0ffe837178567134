from prometheus_client import Counter

CALCULATIONS = Counter("medassist_calculations_total", "Calculations by outcome", ["outcome"])
RECOVERIES = Counter("medassist_recoveries_total", "Recovery records opened")
