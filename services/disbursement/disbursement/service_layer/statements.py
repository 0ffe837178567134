"""Reconciliation against the bank's own statement: every booked transfer matched to exactly one settled
attempt. A transfer we never issued, a key booked twice, an amount or account that differs is an alarm; a
booking of an attempt we do not hold as settled is confirmed with the bank by key and then recorded."""

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from disbursement.adapters.bank import BankGateway, StatementLine
from disbursement.adapters.metrics import OPEN_ALARMS
from disbursement.adapters.tables import Payment, PaymentAlarm, PaymentAttempt, StatementEntry, StatementRun
from disbursement.domain.payment import Alarm, AttemptStatus, business_day
from disbursement.service_layer.payments import ALARM_DETAIL, Answer, raise_alarms
from disbursement.service_layer.sender import apply_safely, fingerprint
from shared.service import Runtime

log = logging.getLogger(__name__)


def _alarm(kind: Alarm, line: StatementLine, subject: str, payment: Payment | None, detail: str | None = None,
           recovery: bool = False) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "kind": kind.value, "subject": subject, "idempotency_key": line.idempotency_key,
            "payment_id": payment.id if payment else None, "case_id": payment.case_id if payment else None,
            "district_code": payment.district_code if payment else None, "amount": line.amount,
            "recovery_amount": line.amount if recovery else None, "bank_reference": line.entry_reference,
            "detail": detail or ALARM_DETAIL[kind], "raised_at": datetime.now(UTC)}


async def reconcile_statement(runtime: Runtime, day: date) -> dict[str, Any]:
    """Fetch the bank's statement for one booking day and match it; returns what was found."""
    gateway: BankGateway = runtime.extras["bank"]
    lines = await gateway.statement(day)
    keys = sorted({line.idempotency_key for line in lines})
    now = datetime.now(UTC)
    async with runtime.db.transaction() as session:
        attempts = {a.idempotency_key: a for a in (await session.execute(
            select(PaymentAttempt).where(PaymentAttempt.idempotency_key.in_(keys)))).scalars()}  # type: ignore[attr-defined]
        payments = {p.id: p for p in (await session.execute(select(Payment).where(Payment.id.in_(  # type: ignore[attr-defined]
            {a.payment_id for a in attempts.values()})))).scalars()} if attempts else {}
        # The first booking of a key (in an earlier statement, else in this one's order) is the payment;
        # any other booking of the same key is money paid twice.
        earlier = (await session.execute(select(StatementEntry.idempotency_key, StatementEntry.entry_reference)
                                         .where(StatementEntry.idempotency_key.in_(keys))  # type: ignore[attr-defined]
                                         .order_by(StatementEntry.matched_at, StatementEntry.position))).all()
        first: dict[str, str] = {}
        for key, reference in [*earlier, *((line.idempotency_key, line.entry_reference) for line in lines)]:
            first.setdefault(key, reference)
        if lines:
            await session.execute(pg_insert(StatementEntry).on_conflict_do_nothing(), [
                {"entry_reference": line.entry_reference, "idempotency_key": line.idempotency_key,
                 "booked_on": day, "amount": line.amount,
                 "account_fingerprint": fingerprint(runtime, line.creditor_account),
                 "payment_id": a.payment_id if (a := attempts.get(line.idempotency_key)) else None,
                 "matched_at": now, "position": i} for i, line in enumerate(lines)])
        alarms: list[dict[str, Any]] = []
        to_confirm: list[str] = []
        for line in lines:
            attempt = attempts.get(line.idempotency_key)
            payment = payments.get(attempt.payment_id) if attempt else None
            if attempt is None or payment is None:
                alarms.append(_alarm(Alarm.UNKNOWN_TRANSFER, line, line.entry_reference, None, recovery=True))
                continue
            if first[line.idempotency_key] != line.entry_reference:
                alarms.append(_alarm(Alarm.BOOKED_TWICE, line, line.entry_reference, payment, recovery=True))
            if line.amount != payment.amount:
                alarms.append(_alarm(Alarm.AMOUNT_MISMATCH, line, line.entry_reference, payment,
                                     f"booked {line.amount:.2f}, the payment is {payment.amount:.2f}"))
            if attempt.account_fingerprint and attempt.account_fingerprint != fingerprint(
                    runtime, line.creditor_account):
                alarms.append(_alarm(Alarm.ACCOUNT_MISMATCH, line, line.entry_reference, payment))
            if attempt.status != AttemptStatus.SETTLED.value:
                to_confirm.append(line.idempotency_key)
        raised = Counter(a["kind"] for a in alarms) if alarms else Counter[str]()
        await raise_alarms(session, alarms)

    if to_confirm:  # booked, yet not settled in our books: the bank's status for the key decides
        answers = await asyncio.gather(*(gateway.status(k) for k in to_confirm), return_exceptions=True)
        await apply_safely(runtime, [Answer.of(k, a) for k, a in zip(to_confirm, answers, strict=True)
                                     if not isinstance(a, BaseException)])
        async with runtime.db.transaction() as session:
            still = set((await session.execute(select(PaymentAttempt.idempotency_key).where(
                PaymentAttempt.idempotency_key.in_(to_confirm),  # type: ignore[attr-defined]
                PaymentAttempt.status != AttemptStatus.SETTLED.value))).scalars())
            contradicted = [_alarm(Alarm.BOOKED_NOT_SETTLED, line, line.entry_reference,
                                   payments[attempts[line.idempotency_key].payment_id])
                            for line in lines if line.idempotency_key in still]
            await raise_alarms(session, contradicted)
            raised.update(a["kind"] for a in contradicted)
    async with runtime.db.transaction() as session:
        stmt = pg_insert(StatementRun).values(booked_on=day, entries=len(lines), alarms=sum(raised.values()),
                                              ran_at=datetime.now(UTC))
        await session.execute(stmt.on_conflict_do_update(index_elements=["booked_on"], set_={
            "entries": stmt.excluded.entries, "alarms": stmt.excluded.alarms, "ran_at": stmt.excluded.ran_at}))
    await refresh_alarm_gauge(runtime)
    return {"booked_on": day.isoformat(), "entries": len(lines),
            "amount": f"{sum((line.amount for line in lines), start=0):.2f}",
            "confirmed_with_the_bank": len(to_confirm), "alarms": dict(sorted(raised.items()))}


async def refresh_alarm_gauge(runtime: Runtime) -> None:
    async with runtime.db.transaction() as session:
        counts = dict((await session.execute(select(PaymentAlarm.kind, func.count()).group_by(
            PaymentAlarm.kind))).all())
    for kind in Alarm:
        OPEN_ALARMS.labels(kind.value).set(counts.get(kind.value, 0))


async def reconcile_daily(runtime: Runtime, stopping: asyncio.Event) -> None:
    """Once the district's day is over, reconcile it against the bank's statement (once per booking day;
    on demand through POST /v1/reconciliation/statement). The alarm gauge follows the table."""
    while not stopping.is_set():
        try:
            yesterday = business_day(datetime.now(UTC)) - timedelta(days=1)
            async with runtime.db.transaction() as session:
                done = (await session.execute(select(StatementRun.booked_on).where(
                    StatementRun.booked_on == yesterday))).scalar_one_or_none()
            if done is None:
                summary = await reconcile_statement(runtime, yesterday)
                log.info("bank statement reconciled", extra={"booked_on": summary["booked_on"],
                                                             "entries": summary["entries"]})
            else:
                await refresh_alarm_gauge(runtime)
        except Exception:
            log.exception("statement reconciliation failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=runtime.settings.statement_check_s)
