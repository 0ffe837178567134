from prometheus_client import Counter

PAYMENTS = Counter("medassist_payments_total", "Payment outcomes from the bank", ["status"])
PAYMENT_CENTS = Counter("medassist_payment_cents_total", "Amount of payment outcomes, in fen (cents)", ["status"])
PAYMENTS_OPENED = Counter("medassist_payments_opened_total", "Payments opened for approved cases")
