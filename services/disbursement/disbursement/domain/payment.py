"""A payment's life. One payment per approved case; each attempt has its own idempotency key, and every
retry of an attempt reuses that key, so the bank can never book the same attempt twice.

Only the bank's own answer for a key (asked by the resolver) moves a payment: a callback is a hint to ask.
`on_bank_answer` and `on_cancel` are the whole rule; they never raise, so one odd answer cannot undo others.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from shared.ids import new_id

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
    CANCELLING = "cancelling"  # the case was cancelled while the bank may hold an attempt: asked (and recalled)
    CANCELLED = "cancelled"  # the case was cancelled and the bank confirmed it holds nothing payable


class AttemptStatus(StrEnum):
    OPEN = "open"  # written, never handed to the bank
    UNKNOWN = "unknown"  # handed to the bank without a final answer (sending, timeout, crash): it may pay
    ACCEPTED = "accepted"
    SETTLED = "settled"
    FAILED = "failed"  # the bank refused or returned it: final and unpaid
    ABSENT = "absent"  # the bank says, after every call could have arrived, that it never received it


class BankWord(StrEnum):
    """The bank's answer for one key: its status, or NOT_RECEIVED when it does not know the key."""

    ACCEPTED = "accepted"
    SETTLED = "settled"
    FAILED = "failed"
    NOT_RECEIVED = "not_received"


class Alarm(StrEnum):
    DOUBLE_PAYMENT = "double_payment"  # two attempts of one payment settled: money to recover
    PAID_AFTER_CANCEL = "paid_after_cancel"  # the bank paid a case that was cancelled or reversed
    UNKNOWN_TRANSFER = "unknown_transfer"  # the statement books a key we never issued
    BOOKED_TWICE = "booked_twice"  # the statement books one key more than once
    AMOUNT_MISMATCH = "amount_mismatch"
    ACCOUNT_MISMATCH = "account_mismatch"
    BOOKED_NOT_SETTLED = "booked_not_settled"  # booked in the statement, yet the bank's status says otherwise
    CONTRADICTION = "contradiction"  # the bank no longer knows an attempt it accepted or settled


class IllegalPaymentTransition(ValueError):
    pass


_ALLOWED: dict[PaymentStatus, set[PaymentStatus]] = {
    PaymentStatus.AWAITING_ACCOUNT: {PaymentStatus.PENDING, PaymentStatus.CANCELLED, PaymentStatus.SETTLED},
    # pending -> accepted/settled/failed: the bank's word on an attempt queued to be sent again arrived first
    PaymentStatus.PENDING: {PaymentStatus.SENDING, PaymentStatus.CANCELLED, PaymentStatus.CANCELLING,
                            PaymentStatus.AWAITING_ACCOUNT, PaymentStatus.ACCEPTED, PaymentStatus.SETTLED,
                            PaymentStatus.FAILED},
    PaymentStatus.SENDING: {PaymentStatus.ACCEPTED, PaymentStatus.SETTLED, PaymentStatus.FAILED,
                            PaymentStatus.PENDING, PaymentStatus.CANCELLING, PaymentStatus.AWAITING_ACCOUNT},
    PaymentStatus.ACCEPTED: {PaymentStatus.SETTLED, PaymentStatus.FAILED, PaymentStatus.CANCELLING},
    # re-issue as a new attempt; a failed payment still hears a later settlement of any attempt
    PaymentStatus.FAILED: {PaymentStatus.PENDING, PaymentStatus.CANCELLED, PaymentStatus.SETTLED},
    PaymentStatus.CANCELLING: {PaymentStatus.CANCELLED, PaymentStatus.SETTLED},
    PaymentStatus.SETTLED: set(),
    # money the bank paid anyway is recorded as paid (and recovered)
    PaymentStatus.CANCELLED: {PaymentStatus.SETTLED},
}

IN_FLIGHT = frozenset({PaymentStatus.AWAITING_ACCOUNT, PaymentStatus.PENDING, PaymentStatus.SENDING,
                       PaymentStatus.ACCEPTED, PaymentStatus.CANCELLING})
MAY_BE_AT_THE_BANK = frozenset({AttemptStatus.UNKNOWN, AttemptStatus.ACCEPTED})
FINAL_UNPAID = frozenset({AttemptStatus.FAILED, AttemptStatus.ABSENT})


def move(current: PaymentStatus, new: PaymentStatus) -> PaymentStatus:
    """The new status, or IllegalPaymentTransition; staying put is always allowed (duplicate bank news)."""
    if new == current or new in _ALLOWED[current]:
        return new
    raise IllegalPaymentTransition(f"{current} -> {new}")


@dataclass(frozen=True)
class Verdict:
    """What one bank answer does: the payment's and the attempt's new status, the outcome event to publish
    ("settled", "failed", "cancelled" or None), an alarm, and whether to ask the bank to recall the attempt."""

    payment: PaymentStatus
    attempt: AttemptStatus
    outcome: str | None = None
    alarm: Alarm | None = None
    recall: bool = False


def on_bank_answer(payment: PaymentStatus, attempt: AttemptStatus, word: BankWord, *, current: bool,
                   settled_elsewhere: bool, quiet: bool) -> Verdict:
    """The bank's word on one attempt of a payment.

    current: it is the payment's latest attempt. settled_elsewhere: another attempt of the payment settled.
    quiet: no call with this key can still be on its way to the bank (so NOT_RECEIVED is final).
    """
    if word is BankWord.SETTLED:
        if attempt is AttemptStatus.SETTLED:
            return Verdict(payment, attempt)  # duplicate news
        if settled_elsewhere:
            return Verdict(PaymentStatus.SETTLED, AttemptStatus.SETTLED, alarm=Alarm.DOUBLE_PAYMENT)
        if payment in (PaymentStatus.CANCELLED, PaymentStatus.CANCELLING):
            return Verdict(PaymentStatus.SETTLED, AttemptStatus.SETTLED, "settled", Alarm.PAID_AFTER_CANCEL)
        return Verdict(PaymentStatus.SETTLED, AttemptStatus.SETTLED, "settled")
    if word is BankWord.FAILED:
        if attempt in (AttemptStatus.SETTLED, AttemptStatus.FAILED):
            return Verdict(payment, attempt)  # paid stays paid; a return shows in the statement
        if not current:
            return Verdict(payment, AttemptStatus.FAILED)
        if payment is PaymentStatus.CANCELLING:
            return Verdict(PaymentStatus.CANCELLED, AttemptStatus.FAILED, "cancelled")
        if payment in (PaymentStatus.PENDING, PaymentStatus.SENDING, PaymentStatus.ACCEPTED):
            return Verdict(PaymentStatus.FAILED, AttemptStatus.FAILED, "failed")
        return Verdict(payment, AttemptStatus.FAILED)
    if word is BankWord.ACCEPTED:
        if attempt in (AttemptStatus.SETTLED, AttemptStatus.FAILED):
            return Verdict(payment, attempt)  # an older answer overtaken by the final one
        if payment in (PaymentStatus.CANCELLING, PaymentStatus.CANCELLED, PaymentStatus.SETTLED):
            return Verdict(payment, AttemptStatus.ACCEPTED, recall=True)  # nothing more may be paid: take it back
        if current and payment in (PaymentStatus.PENDING, PaymentStatus.SENDING):
            return Verdict(PaymentStatus.ACCEPTED, AttemptStatus.ACCEPTED)
        return Verdict(payment, AttemptStatus.ACCEPTED)
    # NOT_RECEIVED: final only when no call with this key can still be on its way
    if not quiet or attempt in (AttemptStatus.OPEN, AttemptStatus.FAILED, AttemptStatus.ABSENT):
        return Verdict(payment, attempt)
    if attempt in (AttemptStatus.SETTLED, AttemptStatus.ACCEPTED):  # the bank lost what it told us it held
        return Verdict(payment, attempt, alarm=Alarm.CONTRADICTION)
    if current and payment is PaymentStatus.CANCELLING:
        return Verdict(PaymentStatus.CANCELLED, AttemptStatus.ABSENT, "cancelled")
    if current and payment is PaymentStatus.SENDING:  # left by a crash, never arrived: send again, same key
        return Verdict(PaymentStatus.PENDING, AttemptStatus.UNKNOWN)
    if current and payment is PaymentStatus.PENDING:
        return Verdict(payment, attempt)  # queued to go again under the same key
    return Verdict(payment, AttemptStatus.ABSENT)


def on_cancel(payment: PaymentStatus, attempt: AttemptStatus) -> Verdict:
    """The case was cancelled (a hospital reversal). Cancelled outright only when the bank cannot hold an
    attempt that might pay; otherwise the bank is asked first (and the attempt recalled)."""
    if payment in (PaymentStatus.SETTLED, PaymentStatus.CANCELLED, PaymentStatus.CANCELLING):
        return Verdict(payment, attempt)  # paid already (calculation recovers it), or cancelled already
    if payment in (PaymentStatus.AWAITING_ACCOUNT, PaymentStatus.FAILED) or (
            payment is PaymentStatus.PENDING and attempt is AttemptStatus.OPEN):
        return Verdict(PaymentStatus.CANCELLED, attempt, "cancelled")
    return Verdict(PaymentStatus.CANCELLING, attempt, recall=attempt is AttemptStatus.ACCEPTED)


def may_reissue(earlier: list[AttemptStatus]) -> bool:
    """A new attempt may go only when every earlier attempt is final and unpaid at the bank."""
    return all(a in FINAL_UNPAID for a in earlier)


IDEMPOTENCY_KEY_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-[0-9]{1,9}$"


def idempotency_key(payment_id: UUID, attempt: int) -> str:
    """The key of one attempt: stored before the first bank call, reused by every retry of that attempt."""
    return f"{payment_id}-{attempt}"


# What the guarded bulk transitions may move (the repository's WHERE clauses say the same):
HANDED_OVER_FROM = frozenset({AttemptStatus.OPEN, AttemptStatus.UNKNOWN})
"""An attempt about to be handed to the bank becomes `unknown` only from these (never over the bank's word)."""


@dataclass
class Attempt:
    """One attempt of a payment: its key, and what the bank said about it."""

    key: str
    payment_id: UUID
    number: int
    status: AttemptStatus
    sent_at: datetime | None = None
    bank_reference: str | None = None
    reason: str | None = None
    settled_at: datetime | None = None
    account_version: int | None = None
    account_fingerprint: str | None = None


@dataclass(frozen=True)
class TransferSettled:
    """The bank's final word on a payment (published as the TransferSettled event): what it was then."""

    status: str  # settled, failed, cancelled
    attempt: int
    account_version: int | None
    bank_reference: str | None
    reason: str | None


@dataclass(frozen=True)
class AlarmRaised:
    kind: Alarm
    key: str


@dataclass(frozen=True)
class RecallWanted:
    """The bank holds an attempt that must not be paid: ask it to take the transfer back."""

    key: str


@dataclass(frozen=True)
class SendAgain:
    """A payment queued to go again now (under the same key)."""


@dataclass(frozen=True)
class CancelAsked:
    """A cancellation waits for the bank's word: the resolver should ask at once."""


PaymentEvent = TransferSettled | AlarmRaised | RecallWanted | SendAgain | CancelAsked


@dataclass
class Payment:
    """The aggregate: one payment per approved case, with the attempts the change at hand concerns.

    Its methods are the only code that changes a payment's or an attempt's status (the repositories write what
    they changed, in bulk); what follows from a change is recorded in `events`.
    """

    id: UUID
    case_id: UUID
    calculation_id: UUID
    settlement_id: UUID
    person_ref: str
    district_code: str
    amount: Decimal
    status: PaymentStatus
    attempt: int
    idempotency_key: str
    approved_on: date
    approved_at: datetime
    next_attempt_at: datetime
    account_version: int | None = None
    bank_reference: str | None = None
    failure_reason: str | None = None
    traceparent: str | None = None
    attempts: dict[str, Attempt] = field(default_factory=dict)
    """The attempts loaded with it, by key (those the change concerns)."""
    settled_keys: set[str] = field(default_factory=set)
    """Keys of its attempts the bank settled (every one, loaded or not)."""
    events: list[PaymentEvent] = field(default_factory=list)
    changed: bool = False
    changed_attempts: set[str] = field(default_factory=set)
    added: list[Attempt] = field(default_factory=list)
    """Attempts it opened (to be written)."""

    @classmethod
    def open(cls, *, case_id: UUID, calculation_id: UUID, settlement_id: UUID, person_ref: str,
             district_code: str, amount: Decimal, decided_at: datetime, has_account: bool, now: datetime,
             traceparent: str | None = None) -> "Payment":
        """A new payment for an approved case, its first key fixed before any bank call can happen."""
        payment_id = new_id()
        key = idempotency_key(payment_id, 1)
        payment = cls(id=payment_id, case_id=case_id, calculation_id=calculation_id, settlement_id=settlement_id,
                      person_ref=person_ref, district_code=district_code, amount=amount,
                      status=PaymentStatus.PENDING if has_account else PaymentStatus.AWAITING_ACCOUNT, attempt=1,
                      idempotency_key=key, approved_on=business_day(decided_at), approved_at=decided_at,
                      next_attempt_at=now, traceparent=traceparent)
        payment._add(Attempt(key, payment_id, 1, AttemptStatus.OPEN))
        return payment

    def _add(self, attempt: Attempt) -> None:
        self.attempts[attempt.key] = attempt
        self.added.append(attempt)

    def _finish(self, outcome: str, attempt: int, account_version: int | None) -> None:
        self.events.append(TransferSettled(outcome, attempt, account_version, self.bank_reference,
                                           self.failure_reason))

    def hear(self, key: str, word: BankWord, bank_reference: str | None, reason: str | None, *, now: datetime,
             quiet_before: datetime) -> bool:
        """The bank's own answer for one of its attempts (`on_bank_answer`); True when anything changed."""
        attempt = self.attempts[key]
        before = (self.status, attempt.status)
        verdict = on_bank_answer(*before, word, current=attempt.number == self.attempt,
                                 settled_elsewhere=bool(self.settled_keys - {key}),
                                 quiet=attempt.sent_at is None or attempt.sent_at < quiet_before)
        if verdict.recall:
            self.events.append(RecallWanted(key))
        if (verdict.payment, verdict.attempt) == before and not verdict.outcome and not verdict.alarm:
            return False
        attempt.status = verdict.attempt
        attempt.bank_reference = bank_reference or attempt.bank_reference
        if verdict.attempt is AttemptStatus.FAILED:
            attempt.reason = reason
        if verdict.attempt is AttemptStatus.SETTLED and before[1] is not AttemptStatus.SETTLED:
            attempt.settled_at = now
            self.settled_keys.add(key)
        self.changed_attempts.add(key)
        if verdict.payment != before[0] or verdict.outcome:
            if verdict.payment is PaymentStatus.PENDING and before[0] is PaymentStatus.SENDING:
                self.next_attempt_at = now
                self.events.append(SendAgain())
            self.status = verdict.payment  # on_bank_answer's moves are all legal (table-tested)
            if verdict.outcome == "settled":
                self.bank_reference, self.failure_reason = attempt.bank_reference, None
            elif verdict.outcome == "failed":
                self.bank_reference, self.failure_reason = attempt.bank_reference, reason
            self.changed = True
        if verdict.outcome:
            self._finish(verdict.outcome, attempt.number, attempt.account_version)
        if verdict.alarm:
            self.events.append(AlarmRaised(verdict.alarm, key))
        return True

    def cancel(self) -> None:
        """The case was cancelled (`on_cancel`): at once when the bank cannot hold a payable attempt, else
        `cancelling` until the bank's word decides."""
        current = self.attempts[self.idempotency_key]
        verdict = on_cancel(self.status, current.status)
        if verdict.payment == self.status:
            return  # paid already (calculation opens a recovery) or being cancelled
        self.status = verdict.payment
        self.changed = True
        if verdict.outcome:
            self._finish(verdict.outcome, self.attempt, self.account_version)
        else:
            self.events.append(CancelAsked())

    def account_arrived(self, version: int | None, *, now: datetime) -> Attempt | None:
        """The registry sent an account (`version`). A payment waiting for one becomes pending; a failed one
        is re-issued as a new attempt, returned, when the account is newer than the one that failed and every
        attempt so far is final and unpaid in our books (the sender confirms that with the bank)."""
        if self.status is PaymentStatus.AWAITING_ACCOUNT:
            self.status, self.next_attempt_at, self.changed = move(self.status, PaymentStatus.PENDING), now, True
            return None
        if self.status is not PaymentStatus.FAILED:
            return None
        if self.account_version is not None and (version or 0) <= self.account_version:
            return None  # the same account that failed: re-sending cannot help
        if not may_reissue([a.status for a in self.attempts.values()]):
            return None
        self.status = move(self.status, PaymentStatus.PENDING)
        self.attempt += 1
        self.idempotency_key = idempotency_key(self.id, self.attempt)
        self.failure_reason = self.bank_reference = None
        self.next_attempt_at, self.changed = now, True
        attempt = Attempt(self.idempotency_key, self.id, self.attempt, AttemptStatus.OPEN)
        self._add(attempt)
        return attempt
