"""The service layer through bootstrap's consumer handler and worker passes, on fake repositories and a fake
bank: one payment per case, cancellations and re-issues by the Payment aggregate's rule, only the bank's own
word moves a payment, and every final word is published once."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from disbursement import bootstrap
from disbursement.adapters.bank import BankResult, BankStatus, StatementLine
from disbursement.dependencies import DisbursementDeps
from disbursement.domain.payment import Attempt, AttemptStatus, Payment, PaymentStatus
from disbursement.service_layer.sender import Sender
from disbursement.service_layer.statements import reconcile_statement
from opentelemetry.trace import INVALID_SPAN

from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.contracts.topics import CASE_DECIDED, REGISTRY_KEY, REGISTRY_PAYEE, TRANSFER_SETTLED
from shared.messaging.consumer import Event

P, A = PaymentStatus, AttemptStatus
FakeStore = FakeBank = Any  # the fixtures' types (tests/unit/conftest.py)


def event(topic: str, data: ev.EventData, ref: str) -> Event:
    return Event(topic, Envelope.wrap(data, person_ref=ref, producer="test"), data, None, INVALID_SPAN)  # type: ignore[arg-type]


def approved(amount: str = "88.80") -> ev.CaseDecided:
    return ev.CaseDecided(case_id=uuid.uuid4(), calculation_id=uuid.uuid4(), settlement_id=uuid.uuid4(),
                          decision="approved", amount=Decimal(amount), district_code="990600",
                          subdistrict_code="990600001", decided_at=datetime(2026, 3, 2, 10, tzinfo=UTC))


def cancelled(case: ev.CaseDecided) -> ev.CaseDecided:
    return case.model_copy(update={"decision": "cancelled", "reason_code": "settlement_reversed"})


def payee(deps: DisbursementDeps, ref: str, version: int = 1,
          account: str = "6222020200441234") -> ev.PayeeAccountUpdated:
    plain = orjson.dumps({"account": account, "name": "王芳", "bank": "Bank"}).decode()
    return ev.PayeeAccountUpdated(account_version=version, payee_ciphertext=deps.payee_cipher.encrypt(plain, ref),
                                  account_masked="****1234")


async def consume(store: FakeStore, deps: DisbursementDeps, *events: Event) -> None:
    """One batch through the handler bootstrap gives the consumer runner, in one unit of work."""
    handler = bootstrap.CONSUMER.handler(SimpleNamespace(deps=deps))  # type: ignore[arg-type]
    async with store.units() as uow:
        await handler(uow, list(events))


def passes(store: FakeStore, deps: DisbursementDeps) -> dict[str, Any]:
    """Each worker's pass, run to its end: what the sender's pass leaves going on (its bank call) awaited too."""
    def whole(worker: bootstrap.Worker) -> Any:
        async def run() -> bool:
            busy = await worker.step()
            if worker.drain:
                await worker.drain()
            return busy
        return run
    return {w.name: whole(w) for w in bootstrap.workers(store.units, deps)}


def outcomes(store: FakeStore) -> list[tuple[str, str, int]]:
    published = [o.envelope.payload() for o in store.outbox if o.topic == TRANSFER_SETTLED]
    return [(str(t.case_id), t.status, t.attempt) for t in published if isinstance(t, ev.TransferSettled)]


def only_payment(store: FakeStore) -> Payment:
    (payment,) = store.books.payments.values()
    return payment


def attempts(store: FakeStore) -> dict[str, AttemptStatus]:
    return {a.key: a.status for a in sorted(store.books.attempts.values(), key=lambda a: a.number)}


async def test_an_approval_opens_one_payment_however_often_it_comes(store: FakeStore, deps: DisbursementDeps) -> None:
    ref, case = "a" * 64, approved()
    await consume(store, deps, event(REGISTRY_PAYEE, payee(deps, ref), ref), event(CASE_DECIDED, case, ref))
    await consume(store, deps, event(CASE_DECIDED, case, ref))
    payment = only_payment(store)
    assert (payment.case_id, payment.status, payment.amount) == (case.case_id, P.PENDING, Decimal("88.80"))
    assert attempts(store) == {payment.idempotency_key: A.OPEN}, "its key is stored before any bank call"
    assert store.wakeups == ["sender", "sender"]


async def test_without_an_account_a_payment_waits_and_goes_when_one_arrives(store: FakeStore, deps: DisbursementDeps,
                                                                           bank: FakeBank) -> None:
    ref = "b" * 64
    await consume(store, deps, event(CASE_DECIDED, approved(), ref))
    assert only_payment(store).status is P.AWAITING_ACCOUNT
    assert await passes(store, deps)["payment sender"]() is False, "nothing is due"
    await consume(store, deps, event(REGISTRY_PAYEE, payee(deps, ref), ref))
    assert only_payment(store).status is P.PENDING
    assert await passes(store, deps)["payment sender"]() is True
    assert [i.creditor_account for i in bank.sent] == ["6222020200441234"]
    assert only_payment(store).status is P.ACCEPTED


async def test_the_banks_word_settles_a_payment_once(store: FakeStore, deps: DisbursementDeps, bank: FakeBank) -> None:
    ref, case = "c" * 64, approved()
    await consume(store, deps, event(REGISTRY_PAYEE, payee(deps, ref), ref), event(CASE_DECIDED, case, ref))
    run = passes(store, deps)
    await run["payment sender"]()
    key = only_payment(store).idempotency_key
    bank.word(key, BankStatus.SETTLED)
    for _ in range(2):  # a duplicate callback: asked again, same answer, nothing new
        deps.hints.report(BankResult(key, None, BankStatus.SETTLED))
        await run["payment resolver"]()
    assert (only_payment(store).status, attempts(store)) == (P.SETTLED, {key: A.SETTLED})
    assert outcomes(store) == [(str(case.case_id), "settled", 1)]
    (settled,) = [o.envelope.payload() for o in store.outbox if o.topic == TRANSFER_SETTLED]
    assert settled.account_version == 1, "the outcome names the account version its attempt went to"


async def test_a_callback_the_bank_does_not_bear_out_changes_nothing(store: FakeStore, deps: DisbursementDeps,
                                                                     bank: FakeBank) -> None:
    ref = "d" * 64
    await consume(store, deps, event(REGISTRY_PAYEE, payee(deps, ref), ref), event(CASE_DECIDED, approved(), ref))
    run = passes(store, deps)
    await run["payment sender"]()
    key = only_payment(store).idempotency_key
    deps.hints.report(BankResult(key, None, BankStatus.FAILED, "account_closed"))  # the bank says: accepted
    await run["payment resolver"]()
    assert (only_payment(store).status, attempts(store)) == (P.ACCEPTED, {key: A.ACCEPTED})
    assert outcomes(store) == []


async def test_an_unreachable_bank_queues_the_same_key_again_later(store: FakeStore, deps: DisbursementDeps,
                                                                   bank: FakeBank) -> None:
    ref = "e" * 64
    await consume(store, deps, event(REGISTRY_PAYEE, payee(deps, ref), ref), event(CASE_DECIDED, approved(), ref))
    bank.unavailable = True
    before = datetime.now(UTC)
    assert await passes(store, deps)["payment sender"]() is True
    payment = only_payment(store)
    assert payment.status is P.PENDING and payment.attempt == 1
    assert payment.next_attempt_at >= before + timedelta(seconds=deps.settings.resend_backoff_s)
    assert attempts(store) == {payment.idempotency_key: A.UNKNOWN}, "the bank may have it: never cancelled unasked"


def seeded(store: FakeStore, status: PaymentStatus, statuses: list[AttemptStatus], version: int | None = 1
           ) -> Payment:
    """A payment already in the books, with attempts 1..n in these statuses (the last is the current one)."""
    case, now = approved(), datetime.now(UTC)
    payment = Payment.open(case_id=case.case_id, calculation_id=case.calculation_id,
                           settlement_id=case.settlement_id, person_ref="f" * 64, district_code=case.district_code,
                           amount=case.amount, decided_at=case.decided_at, has_account=True, now=now)
    payment.status, payment.attempt, payment.account_version = status, len(statuses), version
    payment.idempotency_key = f"{payment.id}-{len(statuses)}"
    payment.attempts, payment.added = {}, []
    store.books.payments[payment.id] = payment
    for number, attempt in enumerate(statuses, start=1):
        key = f"{payment.id}-{number}"
        store.books.attempts[key] = Attempt(key, payment.id, number, attempt, sent_at=now - timedelta(hours=1))
    return payment


@pytest.mark.parametrize(("payment", "attempt", "after", "published", "woken"), [
    (P.AWAITING_ACCOUNT, A.OPEN, P.CANCELLED, ["cancelled"], []),
    (P.PENDING, A.OPEN, P.CANCELLED, ["cancelled"], []),
    (P.FAILED, A.FAILED, P.CANCELLED, ["cancelled"], []),
    (P.PENDING, A.UNKNOWN, P.CANCELLING, [], ["resolver"]),  # handed over once: the bank may hold it
    (P.SENDING, A.UNKNOWN, P.CANCELLING, [], ["resolver"]),
    (P.ACCEPTED, A.ACCEPTED, P.CANCELLING, [], ["resolver"]),
    (P.SETTLED, A.SETTLED, P.SETTLED, [], []),  # paid: calculation opens the recovery
    (P.CANCELLED, A.OPEN, P.CANCELLED, [], []),
])
async def test_a_cancellation(store: FakeStore, deps: DisbursementDeps, payment: PaymentStatus, attempt: AttemptStatus,
                              after: PaymentStatus, published: list[str], woken: list[str]) -> None:
    seed = seeded(store, payment, [attempt])
    case = approved().model_copy(update={"case_id": seed.case_id})
    await consume(store, deps, event(CASE_DECIDED, cancelled(case), seed.person_ref))
    assert only_payment(store).status is after
    assert [status for _, status, _ in outcomes(store)] == published
    assert store.wakeups == woken


@pytest.mark.parametrize(("earlier", "version", "reissued"), [
    ([A.FAILED], 2, True),
    ([A.ABSENT, A.FAILED], 2, True),
    ([A.FAILED], 1, False),  # the same account that failed: sending again cannot help
    ([A.UNKNOWN, A.FAILED], 2, False),  # an earlier attempt might still pay
    ([A.ACCEPTED, A.FAILED], 2, False),
])
async def test_a_corrected_account_reissues_a_failed_payment(store: FakeStore, deps: DisbursementDeps,
                                                             earlier: list[AttemptStatus], version: int,
                                                             reissued: bool) -> None:
    seed = seeded(store, P.FAILED, earlier)
    await consume(store, deps, event(REGISTRY_PAYEE, payee(deps, seed.person_ref, version), seed.person_ref))
    payment = only_payment(store)
    if reissued:
        assert (payment.status, payment.attempt) == (P.PENDING, len(earlier) + 1)
        assert attempts(store)[payment.idempotency_key] is A.OPEN
    else:
        assert (payment.status, payment.attempt) == (P.FAILED, len(earlier))
        assert len(attempts(store)) == len(earlier)


async def test_a_reissue_goes_only_once_the_bank_confirms_the_earlier_attempt_unpaid(
        store: FakeStore, deps: DisbursementDeps, bank: FakeBank) -> None:
    seed = seeded(store, P.FAILED, [A.FAILED])
    first = seed.idempotency_key
    await consume(store, deps, event(REGISTRY_PAYEE, payee(deps, seed.person_ref, 2), seed.person_ref))
    bank.word(first, BankStatus.SETTLED)  # the bank paid attempt 1 after all
    await passes(store, deps)["payment sender"]()
    assert bank.sent == [], "attempt 2 is held"
    assert only_payment(store).status is P.SETTLED
    assert outcomes(store) == [(str(seed.case_id), "settled", 1)]


async def test_two_settled_attempts_are_a_double_payment_alarm_with_its_recovery(
        store: FakeStore, deps: DisbursementDeps, bank: FakeBank) -> None:
    seed = seeded(store, P.SETTLED, [A.SETTLED, A.UNKNOWN])
    bank.word(f"{seed.id}-2", BankStatus.SETTLED)
    await passes(store, deps)["payment resolver"]()
    (alarm,) = store.books.alarms.values()
    assert (alarm["kind"], alarm["recovery_amount"], alarm["idempotency_key"]) == (
        "double_payment", Decimal("88.80"), f"{seed.id}-2")
    assert outcomes(store) == [], "the payment was settled already: no second TransferSettled"


@pytest.mark.parametrize(("line", "kinds"), [
    (lambda key: StatementLine("E1", key, Decimal("88.80"), "6222020200441234"), {}),
    (lambda key: StatementLine("E1", key, Decimal("80.00"), "6222020200441234"), {"amount_mismatch": 1}),
    (lambda key: StatementLine("E1", "00000000-0000-0000-0000-000000000000-1", Decimal("88.80"), "1"),
     {"unknown_transfer": 1}),
])
async def test_a_statement_booking_matches_one_settled_attempt(store: FakeStore, deps: DisbursementDeps, bank: FakeBank,
                                                               line: Any, kinds: dict[str, int]) -> None:
    seed = seeded(store, P.SETTLED, [A.SETTLED])
    bank.lines = [line(seed.idempotency_key)]
    summary = await reconcile_statement(store.units, deps, datetime.now(UTC).date())
    assert summary["alarms"] == kinds and summary["entries"] == 1


async def test_yesterdays_statement_is_reconciled_once_and_an_absent_bank_waits_for_the_next_check(
        store: FakeStore, deps: DisbursementDeps, bank: FakeBank) -> None:
    daily = passes(store, deps)["statement reconciliation"]
    bank.unavailable = True
    assert await daily() is False, "no failure for the worker loop to retry at once"
    assert store.books.runs == {}
    bank.unavailable = False
    await daily()
    await daily()
    assert bank.statements_fetched == 1 and len(store.books.runs) == 1


async def test_a_pass_sends_its_batch_in_one_call_and_confirms_a_batch_of_callbacks_in_one(
        store: FakeStore, deps: DisbursementDeps, bank: FakeBank) -> None:
    refs = [f"{i:x}".rjust(64, "a") for i in range(5)]
    cases = [approved(f"{i + 1}.00") for i in range(5)]
    accounts = ev.PayeeAccountsUpdated(accounts=[  # the five accounts in one registry event (ADR 0033)
        ev.UpdatedPayeeAccount(person_ref=r, **payee(deps, r).model_dump()) for r in refs])
    await consume(store, deps, event(REGISTRY_PAYEE, accounts, REGISTRY_KEY),
                  *[event(CASE_DECIDED, c, r) for c, r in zip(cases, refs, strict=True)])
    run = passes(store, deps)
    await run["payment sender"]()
    assert bank.calls == ["submit"] and len(bank.sent) == 5, "five payments, one bank call"
    keys = sorted(a.key for a in store.books.attempts.values())
    for key in keys:  # one callback naming all five
        bank.word(key, BankStatus.SETTLED)
        deps.hints.report(BankResult(key, None, BankStatus.SETTLED))
    await run["payment resolver"]()
    assert bank.calls == ["submit", "statuses"], "five callbacks, one status call"
    assert set(attempts(store).values()) == {A.SETTLED}
    assert sorted(outcomes(store)) == sorted((str(c.case_id), "settled", 1) for c in cases)


async def test_a_transfer_the_bank_could_not_take_leaves_its_failed_span_though_its_settlement_is_unsampled(
        store: FakeStore, deps: DisbursementDeps, bank: FakeBank, monkeypatch: pytest.MonkeyPatch) -> None:
    """ADR 0029: a failed bank transfer span is kept when its settlement was not sampled; a good one is not."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace import StatusCode

    from shared import telemetry

    exported = InMemorySpanExporter()
    keep = telemetry.KeepErrorsAndSlow([SimpleSpanProcessor(exported)], slow_ms=60_000, max_per_s=1000)
    provider = TracerProvider(sampler=telemetry.RecordUnsampledEntries(ParentBased(TraceIdRatioBased(0.0))))
    provider.add_span_processor(keep)
    for name in ("_sdk", "_keep", "_random_ids"):  # put back after the test: the services' one EntrySpans
        monkeypatch.setattr(telemetry.entry_spans, name, getattr(telemetry.entry_spans, name))
    telemetry.entry_spans.use(provider, keep)
    ref = "e" * 64
    await consume(store, deps, event(REGISTRY_PAYEE, payee(deps, ref), ref), event(CASE_DECIDED, approved(), ref))
    bank.unavailable = True
    assert await passes(store, deps)["payment sender"]() is True
    [failed] = exported.get_finished_spans()
    assert failed.name == "bank transfer" and failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["payment.retry_later"] is True
    bank.unavailable = False
    only_payment(store).next_attempt_at = datetime.now(UTC)  # due again now
    assert await passes(store, deps)["payment sender"]() is True
    assert len(exported.get_finished_spans()) == 1, "the transfer the bank took leaves nothing (unsampled)"


async def test_a_first_attempt_is_claimed_and_handed_over_in_one_transaction_before_its_bank_call(
        store: FakeStore, deps: DisbursementDeps, bank: FakeBank) -> None:
    ref = "f1" * 32
    await consume(store, deps, event(REGISTRY_PAYEE, payee(deps, ref), ref), event(CASE_DECIDED, approved(), ref))
    opened: list[int] = []
    units = store.units

    @asynccontextmanager
    async def counted() -> AsyncIterator[Any]:
        opened.append(len(bank.calls))
        async with units() as uow:
            yield uow

    seen: dict[str, Any] = {}
    submit = bank.submit_batch

    async def submit_batch(instructions: Any) -> Any:  # what is committed when the bank is called
        seen.update(units=len(opened), status=only_payment(store).status, attempts=attempts(store))
        return await submit(instructions)

    bank.submit_batch = submit_batch
    sender = Sender(counted, deps)
    assert await sender.step() is True
    await sender.drain()
    key = only_payment(store).idempotency_key
    assert seen == {"units": 1, "status": P.SENDING, "attempts": {key: A.UNKNOWN}}, "one commit before the call"
    assert only_payment(store).status is P.ACCEPTED
