"""Reconciliation against the bank's own statement: every booked transfer matched to exactly one settled
attempt. A transfer we never issued, a key booked twice, an amount or account that differs is an alarm; a
booking of an attempt we do not hold as settled is confirmed with the bank by key and then recorded."""

import logging
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from disbursement.adapters.bank import BankUnavailable, StatementLine
from disbursement.adapters.metrics import OPEN_ALARMS
from disbursement.dependencies import DisbursementDeps
from disbursement.domain.payment import Alarm, AttemptStatus, Payment, business_day
from disbursement.service_layer.payments import ALARM_DETAIL, Answer, raise_alarms
from disbursement.service_layer.sender import apply_safely, fingerprint
from disbursement.service_layer.unit_of_work import Units
from shared.ids import new_id

log = logging.getLogger(__name__)


def _alarm(kind: Alarm, line: StatementLine, payment: Payment | None, detail: str | None = None,
           recovery: bool = False) -> dict[str, Any]:
    return {"id": new_id(), "kind": kind.value, "subject": line.entry_reference,
            "idempotency_key": line.idempotency_key, "payment_id": payment.id if payment else None,
            "case_id": payment.case_id if payment else None,
            "district_code": payment.district_code if payment else None, "amount": line.amount,
            "recovery_amount": line.amount if recovery else None, "bank_reference": line.entry_reference,
            "detail": detail or ALARM_DETAIL[kind], "raised_at": datetime.now(UTC)}


def match(lines: list[StatementLine], payments: dict[str, Payment], first: dict[str, str],
          fingerprints: dict[str, str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The statement rule: (alarms, keys booked yet not settled in our books, to confirm with the bank).

    `payments`: per key, its payment with that attempt; `first`: per key, the entry reference of its first
    booking (any other booking of the key is money paid twice); `fingerprints`: per entry, its account's."""
    alarms: list[dict[str, Any]] = []
    to_confirm: list[str] = []
    for line in lines:
        payment = payments.get(line.idempotency_key)
        if payment is None:
            alarms.append(_alarm(Alarm.UNKNOWN_TRANSFER, line, None, recovery=True))
            continue
        attempt = payment.attempts[line.idempotency_key]
        if first[line.idempotency_key] != line.entry_reference:
            alarms.append(_alarm(Alarm.BOOKED_TWICE, line, payment, recovery=True))
        if line.amount != payment.amount:
            alarms.append(_alarm(Alarm.AMOUNT_MISMATCH, line, payment,
                                 f"booked {line.amount:.2f}, the payment is {payment.amount:.2f}"))
        if attempt.account_fingerprint and attempt.account_fingerprint != fingerprints[line.entry_reference]:
            alarms.append(_alarm(Alarm.ACCOUNT_MISMATCH, line, payment))
        if attempt.status is not AttemptStatus.SETTLED:
            to_confirm.append(line.idempotency_key)
    return alarms, to_confirm


async def reconcile_statement(units: Units, deps: DisbursementDeps, day: date) -> dict[str, Any]:
    """Fetch the bank's statement for one booking day and match it; returns what was found.
    Raises BankUnavailable when the statement cannot be fetched."""
    lines = await deps.bank.statement(day)
    keys = sorted({line.idempotency_key for line in lines})
    fingerprints = {line.entry_reference: fingerprint(deps, line.creditor_account) for line in lines}
    now = datetime.now(UTC)
    async with units() as uow:
        payments = await uow.payments.by_keys(keys)
        # The first booking of a key (in an earlier statement, else in this one's order) is the payment.
        first: dict[str, str] = {}
        for key, reference in [*await uow.statements.bookings(keys),
                               *((line.idempotency_key, line.entry_reference) for line in lines)]:
            first.setdefault(key, reference)
        await uow.statements.add_entries([
            {"entry_reference": line.entry_reference, "idempotency_key": line.idempotency_key, "booked_on": day,
             "amount": line.amount, "account_fingerprint": fingerprints[line.entry_reference],
             "payment_id": p.id if (p := payments.get(line.idempotency_key)) else None, "matched_at": now,
             "position": i} for i, line in enumerate(lines)])
        alarms, to_confirm = match(lines, payments, first, fingerprints)
        raised = Counter(a["kind"] for a in alarms)
        await raise_alarms(uow, alarms)

    if to_confirm:  # booked, yet not settled in our books: the bank's status for the key decides
        try:  # one status call for every key (a bank that sends no callbacks brings many here)
            answers = [Answer.of(k, a) for k, a in (await deps.bank.statuses(sorted(to_confirm))).items()]
        except Exception:  # not asked: each stays unsettled in our books, and is an alarm below
            log.warning("the bank could not be asked about %d booked keys", len(to_confirm), exc_info=True)
            answers = []
        await apply_safely(units, answers, quiet_after_s=deps.settings.sending_stale_s)
        async with units() as uow:
            still = await uow.payments.unsettled(to_confirm)
            contradicted = [_alarm(Alarm.BOOKED_NOT_SETTLED, line, payments[line.idempotency_key])
                            for line in lines if line.idempotency_key in still]
            await raise_alarms(uow, contradicted)
            raised.update(a["kind"] for a in contradicted)
    async with units() as uow:
        await uow.statements.record_run(day, len(lines), sum(raised.values()), datetime.now(UTC))
    await refresh_alarm_gauge(units)
    return {"booked_on": day.isoformat(), "entries": len(lines),
            "amount": f"{sum((line.amount for line in lines), start=0):.2f}",
            "confirmed_with_the_bank": len(to_confirm), "alarms": dict(sorted(raised.items()))}


async def refresh_alarm_gauge(units: Units) -> None:
    async with units() as uow:
        counts = await uow.alarms.count_by_kind()
    for kind in Alarm:
        OPEN_ALARMS.labels(kind.value).set(counts.get(kind.value, 0))


async def reconcile_yesterday(units: Units, deps: DisbursementDeps) -> bool:
    """Once the district's day is over, reconcile it against the bank's statement (once per booking day;
    on demand through POST /v1/reconciliation/statement). The alarm gauge follows the table."""
    yesterday = business_day(datetime.now(UTC)) - timedelta(days=1)
    async with units() as uow:
        done = await uow.statements.reconciled(yesterday)
    if done:
        await refresh_alarm_gauge(units)
        return False
    try:
        summary = await reconcile_statement(units, deps, yesterday)
    except BankUnavailable:  # asked again at the next check, not at the worker loop's quicker failure backoff
        log.warning("the bank's statement could not be fetched; tried again later", extra={"booked_on": str(yesterday)})
        return False
    log.info("bank statement reconciled", extra={"booked_on": summary["booked_on"], "entries": summary["entries"]})
    return False
