"""A payment's life. One payment per approved case; each attempt has its own idempotency key, and every
retry of an attempt reuses that key, so the bank can never book the same attempt twice."""

from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from uuid import UUID

# China Standard Time (no daylight saving): the districts reconcile by their own calendar day, not UTC's.
BUSINESS_TIME = timezone(timedelta(hours=8), "CST")


def business_day(at: datetime) -> date:
    """The district's calendar day of an instant (an approval at 00:30 Beijing time belongs to that day)."""
    return at.astimezone(BUSINESS_TIME).date()


class PaymentStatus(StrEnum):
    AWAITING_ACCOUNT = "awaiting_account"  # the registry has no bank account for the person yet
    PENDING = "pending"  # ready to send (first send, or a retry after the bank was unavailable)
    SENDING = "sending"  # a worker has it; a crash here is resolved by asking the bank by key
    ACCEPTED = "accepted"  # the bank has it; waiting for its final word
    SETTLED = "settled"
    FAILED = "failed"  # the bank refused it (closed account, name mismatch): waits for a corrected account
    CANCELLED = "cancelled"  # the case was cancelled before anything was sent


class IllegalPaymentTransition(ValueError):
    pass


_ALLOWED: dict[PaymentStatus, set[PaymentStatus]] = {
    PaymentStatus.AWAITING_ACCOUNT: {PaymentStatus.PENDING, PaymentStatus.CANCELLED},
    # pending -> accepted/settled/failed: the bank's word on an attempt queued to be sent again arrived first
    PaymentStatus.PENDING: {PaymentStatus.SENDING, PaymentStatus.CANCELLED, PaymentStatus.AWAITING_ACCOUNT,
                            PaymentStatus.ACCEPTED, PaymentStatus.SETTLED, PaymentStatus.FAILED},
    PaymentStatus.SENDING: {PaymentStatus.ACCEPTED, PaymentStatus.SETTLED, PaymentStatus.FAILED,
                            PaymentStatus.PENDING},
    PaymentStatus.ACCEPTED: {PaymentStatus.SETTLED, PaymentStatus.FAILED},
    PaymentStatus.FAILED: {PaymentStatus.PENDING, PaymentStatus.CANCELLED},  # re-issue as a new attempt
    PaymentStatus.SETTLED: set(),
    PaymentStatus.CANCELLED: set(),
}

IN_FLIGHT = frozenset({PaymentStatus.AWAITING_ACCOUNT, PaymentStatus.PENDING, PaymentStatus.SENDING,
                       PaymentStatus.ACCEPTED})
CANCELLABLE = frozenset({PaymentStatus.AWAITING_ACCOUNT, PaymentStatus.PENDING, PaymentStatus.FAILED})


def move(current: PaymentStatus, new: PaymentStatus) -> PaymentStatus:
    """The new status, or IllegalPaymentTransition; staying put is always allowed (duplicate bank news)."""
    if new == current or new in _ALLOWED[current]:
        return new
    raise IllegalPaymentTransition(f"{current} -> {new}")


IDEMPOTENCY_KEY_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-[0-9]{1,9}$"


def idempotency_key(payment_id: UUID, attempt: int) -> str:
    """The key of one attempt: stored before the first bank call, reused by every retry of that attempt."""
    return f"{payment_id}-{attempt}"
