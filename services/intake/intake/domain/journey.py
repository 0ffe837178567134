"""Where a settlement is in its journey, as the hospital sees it.

Events about one settlement arrive on several topics and so in no guaranteed order; the status only
moves forward (by stage), except that a failed payment can still become paid after a re-issue, and a
reversal is final.
"""

from enum import StrEnum


class Journey(StrEnum):
    RECEIVED = "received"
    PARKED = "parked"  # screened, not (yet) eligible: waiting for consent or the registry
    ELIGIBLE = "eligible"
    CALCULATED = "calculated"  # in review by the sub-district and district
    NOTHING_TO_PAY = "nothing_to_pay"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    PAYMENT_FAILED = "payment_failed"
    PAID = "paid"
    REVERSED = "reversed"


STAGE = {  # the order of the journey; statuses of one stage replace each other (the latest stands)
    Journey.RECEIVED: 0,
    Journey.PARKED: 1,
    Journey.ELIGIBLE: 2,
    Journey.CALCULATED: 3,
    Journey.NOTHING_TO_PAY: 4,
    Journey.APPROVED: 4,
    Journey.REJECTED: 4,
    Journey.CANCELLED: 4,
    Journey.PAYMENT_FAILED: 5,
    Journey.PAID: 6,
    Journey.REVERSED: 7,
}


def wins(current: Journey, new: Journey) -> bool:
    """Whether learning `new` replaces `current`: a later or the same stage does; nothing replaces a reversal.
    The status view's UPDATE decides the same in SQL (`adapters.repositories`, built from `STAGE`)."""
    return current is not Journey.REVERSED and STAGE[new] >= STAGE[current]
