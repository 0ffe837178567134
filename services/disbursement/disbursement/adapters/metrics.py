from prometheus_client import Counter, Gauge

PAYMENTS = Counter("medassist_payments_total", "Payment outcomes from the bank", ["status"])
PAYMENT_CENTS = Counter("medassist_payment_cents_total", "Amount of payment outcomes, in fen (cents)", ["status"])
PAYMENTS_OPENED = Counter("medassist_payments_opened_total", "Payments opened for approved cases")
# Gauges refreshed from the database (service_layer/gauges.py), the figures Prometheus' alert rules read.
PAYMENTS_BY_STATUS = Gauge("medassist_payments_current", "Payments now in each status", ["status"])
RECONCILIATION_ALARMS = Gauge("medassist_reconciliation_alarms",
                              "District-days of the last RECONCILE_DAYS whose payments do not add up")
DOUBLE_PAYMENTS = Gauge("medassist_double_payments", "Payments with more than one attempt the bank settled")
BANK_ANSWERS = Counter("medassist_bank_answers_total", "Bank answers that changed a payment or attempt, by word",
                       ["word"])
CALLBACKS_UNCONFIRMED = Counter("medassist_bank_callbacks_unconfirmed_total",
                                "Signed callbacks whose status the bank's own answer for the key did not confirm")
ALARMS = Counter("medassist_payment_alarms_total", "Payment alarms raised (double payment, paid after cancel, "
                 "statement differences), by kind", ["kind"])
OPEN_ALARMS = Gauge("medassist_payment_alarms_on_record", "Payment alarms on record, by kind (refreshed every minute)",
                    ["kind"])
