"""Notification's service layer through its bootstrap, on a fake unit of work with in-memory repositories:
which messages a batch writes, and what the sender makes of the gateway's answers."""

import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from notification.adapters.repositories import ViewFacts
from notification.adapters.sms_gateway import Sms, SmsBatchAnswer, SmsReceipt, SmsRejected
from notification.adapters.tables import Recipient, ResidentSettlement
from notification.bootstrap import events_handler
from notification.config import NotificationSettings
from notification.dependencies import NotificationDeps, Wording
from notification.domain.messages import Claimed, DeliveryReport, NewMessage, Outcome, one_per_message
from notification.domain.moments import Place
from notification.domain.schedule import QuietHours
from notification.service_layer.reports import record_delivery_reports
from notification.service_layer.sender import Sender
from notification.service_layer.unit_of_work import NotificationUnitOfWork
from opentelemetry import trace

from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.contracts.topics import REGISTRY_KEY
from shared.http_client import PartnerUnavailable
from shared.messaging.consumer import Event
from shared.service import Runtime

REF = "a" * 64


class FakeRecipients:
    def __init__(self) -> None:
        self.rows: dict[str, Recipient] = {}
        self.versions: dict[tuple[str, int], str] = {}

    async def store(self, contacts: dict[str, ev.ContactUpdated], versions: dict[tuple[str, int], str],
                    accounts: dict[str, str], now: datetime) -> None:
        for ref, c in contacts.items():
            old = self.rows.get(ref)
            if old is None or old.contact_version < c.contact_version:
                self.rows[ref] = Recipient(
                    person_ref=ref, contact_version=c.contact_version, phone_ciphertext=c.phone_ciphertext,
                    phone_masked=c.phone_masked, sms_opt_out=c.sms_opt_out,
                    account_masked=old.account_masked if old else None, updated_at=now)
        self.versions.update(versions)
        for ref, masked in accounts.items():
            recipient = self.rows.setdefault(ref, Recipient(person_ref=ref, contact_version=0, updated_at=now))
            recipient.account_masked = masked

    async def get_many(self, refs: Iterable[str]) -> dict[str, Recipient]:
        return {r: self.rows[r] for r in refs if r in self.rows}

    async def accounts(self, versions: set[tuple[str, int]]) -> dict[tuple[str, int], str]:
        return {v: self.versions[v] for v in versions if v in self.versions}


class FakeView:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, ResidentSettlement] = {}

    async def apply(self, facts: ViewFacts) -> None:
        for sid, row in facts.decided.items():
            self.rows[sid] = ResidentSettlement(**row)

    async def places(self, settlement_ids: set[uuid.UUID]) -> dict[uuid.UUID, Place]:
        return {s: Place(self.rows[s].hospital_id, self.rows[s].discharge_date) for s in settlement_ids
                if s in self.rows}


class FakeMessages:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, dict[str, Any]] = {}
        self.due: list[Claimed] = []
        self.outcomes: list[Outcome] = []
        self.unsticks = 0
        self.reports: list[tuple[uuid.UUID, str]] = []
        self.followed: list[str] = []
        self.settled = 0

    async def add(self, messages: Sequence[NewMessage], now: datetime) -> list[str]:
        new = [{**vars(m), "created_at": now} for m in messages if m.id not in self.rows]
        self.rows.update((r["id"], r) for r in new)
        return [r["moment"] for r in new]

    async def follow_contacts(self, refs: Sequence[str]) -> None:
        self.followed += refs

    async def settle_all(self) -> None:
        self.settled += 1

    async def claim_due(self, limit: int, stale_s: float, *, unstick: bool = True) -> list[Claimed]:
        self.unsticks += unstick
        claimed, self.due = self.due[:limit], self.due[limit:]
        return claimed

    async def waiting(self) -> int:
        return len(self.due)

    async def record(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        self.outcomes += outcomes

    async def report(self, reports: Sequence[DeliveryReport], now: datetime) -> list[str]:
        moved = []
        for r in reports:
            if r.message_id in self.rows and self.rows[r.message_id]["status"] in ("sending", "sent"):
                self.rows[r.message_id]["status"] = r.status
                self.reports.append((r.message_id, r.status))
                moved.append(r.status)
        return moved


class FakeUnitOfWork(NotificationUnitOfWork):
    def __init__(self, recipients: FakeRecipients | None = None, view: FakeView | None = None,
                 messages: FakeMessages | None = None) -> None:  # no session: nothing here reaches a database
        self._events = []
        self.recipients = cast(Any, recipients or FakeRecipients())
        self.view = cast(Any, view or FakeView())
        self.messages = cast(Any, messages or FakeMessages())


class FakeGateway:
    """Answers each message by its text: a gateway status, SmsRejected (refused alone) or PartnerUnavailable
    (unknown after the retries)."""

    def __init__(self, answers: dict[str, Exception | str]) -> None:
        self.answers, self.sent = answers, []
        self.batches: list[list[Sms]] = []

    async def send_batch(self, messages: Sequence[Sms], callback_url: str | None = None, *,
                         sampled: bool = False) -> SmsBatchAnswer:
        self.batches.append(list(messages))
        answer = SmsBatchAnswer()
        for sms in messages:
            self.sent.append(sms)
            said = self.answers.get(sms.text, "accepted")
            if isinstance(said, SmsRejected):
                answer.rejected[sms.idempotency_key] = said.reason
            elif isinstance(said, Exception):
                answer.unknown.add(sms.idempotency_key)
            else:
                answer.receipts[sms.idempotency_key] = SmsReceipt(sms.idempotency_key,
                                                                  f"gw-{sms.idempotency_key[:8]}", said)
        return answer


def deps(quiet: str = "off", gateway: FakeGateway | None = None) -> NotificationDeps:
    settings = NotificationSettings(sms_quiet_hours=quiet)
    built = NotificationDeps.build(settings, Wording.from_settings(settings))
    return replace(built, sms=cast(Any, gateway or FakeGateway({})))


def runtime(d: NotificationDeps) -> Runtime[NotificationDeps]:
    nothing: Any = None  # the handler needs only the deps
    return Runtime(nothing, nothing, nothing, nothing, nothing, d)


def event(data: ev.EventData, ref: str = REF, at: datetime | None = None) -> Event:
    envelope = Envelope.wrap(data, person_ref=ref, producer="test")
    if at is not None:
        envelope = envelope.model_copy(update={"occurred_at": at})
    return Event("topic", envelope, data, cast(Any, None), trace.INVALID_SPAN)


def journey(sid: uuid.UUID, assistance: str = "1234.56") -> list[ev.EventData]:
    calc, case = uuid.uuid4(), uuid.uuid4()
    zero, amount = Decimal("0.00"), Decimal(assistance)
    figures = ev.AssistanceFigures(
        policy_scope_amount=Decimal("8000.00"), basic_insurance_paid=Decimal("5000.00"),
        critical_illness_paid=Decimal("1000.00"), base=Decimal("2000.00"), deductible=zero,
        deductible_used_before=zero, deductible_left=zero, deductible_applied=zero, ratio=Decimal("0.8"),
        amount_before_caps=amount, per_settlement_cap=None, amount_after_settlement_cap=amount,
        cap=Decimal("40000.00"), committed_before=zero, cap_left=Decimal("40000.00"), assistance=amount)
    return [
        ev.AssistanceCalculated(calculation_id=calc, settlement_id=sid, hospital_id="H001", category="subsistence",
                                district_code="310110", subdistrict_code="310110001", visit_type="inpatient",
                                hospital_level=2, discharge_date=date(2026, 3, 2), year=2026, policy_id="p",
                                policy_version=1, figures=figures),
        ev.CaseDecided(case_id=case, calculation_id=calc, settlement_id=sid, decision="approved", amount=amount,
                       district_code="310110", subdistrict_code="310110001", decided_at=datetime.now(UTC)),
        ev.TransferSettled(payment_id=uuid.uuid4(), case_id=case, calculation_id=calc, settlement_id=sid,
                           status="settled", amount=amount, account_version=2),
    ]


def contact(opt_out: bool = False, version: int = 1) -> ev.ContactUpdated:
    return ev.ContactUpdated(contact_version=version, phone_ciphertext="c1:x", phone_masked="138****5678",
                             sms_opt_out=opt_out)


def registry_events(chunked: bool) -> list[Event]:
    """REF's contact and account, as one-person events or many persons an event (ADR 0033)."""
    account = ev.PayeeAccountUpdated(account_version=2, payee_ciphertext="p1:x", account_masked="6222****4321")
    if not chunked:
        return [event(contact()), event(account)]
    other = "9" * 64
    return [event(ev.ContactsUpdated(contacts=[ev.UpdatedContact(person_ref=r, **contact().model_dump())
                                               for r in (other, REF)]), REGISTRY_KEY),
            event(ev.PayeeAccountsUpdated(accounts=[
                ev.UpdatedPayeeAccount(person_ref=other, account_version=1, payee_ciphertext="p9:x",
                                       account_masked="6222****9999"),
                ev.UpdatedPayeeAccount(person_ref=REF, **account.model_dump())]), REGISTRY_KEY)]


@pytest.mark.parametrize("chunked", [False, True])
async def test_each_moment_is_one_message_in_the_order_things_happened_and_a_redelivery_writes_none(
        chunked: bool) -> None:
    d, uow, sid = deps(), FakeUnitOfWork(), uuid.uuid4()
    t0 = datetime.now(UTC)
    calculated, approved, paid = (event(e, at=t0 + timedelta(seconds=i)) for i, e in enumerate(journey(sid)))
    handler = events_handler(runtime(d))
    await handler(uow, [paid, *registry_events(chunked), approved, calculated])  # topics in any order
    rows = list(uow.messages.rows.values())
    assert [r["moment"] for r in rows] == ["assistance_calculated", "case_approved", "transfer_settled"]
    assert all(r["status"] == "pending" and r["template_version"] == d.wording.templates.version for r in rows)
    assert "1,234.56 元" in rows[0]["body"] and "****4321" in rows[2]["body"]
    assert all(r["not_before"] >= r["created_at"] + timedelta(seconds=d.wording.hold_s) for r in rows)
    again = FakeUnitOfWork(uow.recipients, uow.view, uow.messages)
    await handler(again, [calculated, approved, paid])
    assert len(uow.messages.rows) == 3 and again.pending == ()


@pytest.mark.parametrize(("quiet", "opt_out", "status", "waits_for_morning"), [
    ("off", False, "pending", False),
    ("off", True, "suppressed", False),
    ("00:00-23:59", False, "pending", True),
])
async def test_opt_outs_and_quiet_hours_decide_how_a_message_is_written(quiet: str, opt_out: bool, status: str,
                                                                       waits_for_morning: bool) -> None:
    d, uow = deps(quiet), FakeUnitOfWork()
    await events_handler(runtime(d))(uow, [event(contact(opt_out)), event(journey(uuid.uuid4())[0])])
    [row] = uow.messages.rows.values()
    assert row["status"] == status
    quiet_hours = QuietHours.parse(quiet)
    assert not quiet_hours.is_quiet(row["not_before"])  # due when sending is allowed, at the window's end if need be
    assert quiet_hours.is_quiet(row["not_before"] - timedelta(seconds=1)) is waits_for_morning


async def test_a_message_for_someone_without_a_phone_is_held_and_their_contact_brings_it_in_line() -> None:
    d, uow = deps(), FakeUnitOfWork()
    handler = events_handler(runtime(d))
    await handler(uow, [event(journey(uuid.uuid4())[0])])
    [row] = uow.messages.rows.values()
    assert row["status"] == "held" and uow.messages.followed == []
    await handler(uow, [event(contact())])
    assert uow.messages.followed == [REF], "the stored contact releases (or suppresses) what waits for it"


def claimed(text: str) -> Claimed:
    return Claimed(uuid.uuid4(), REF, "case_approved", text, None, "")


async def test_the_sender_records_what_the_gateway_said_and_sends_nothing_in_quiet_hours() -> None:
    gateway = FakeGateway({"ok": "accepted", "done": "delivered", "bad": SmsRejected("not_mobile"),
                           "away": PartnerUnavailable("down")})
    d = deps(gateway=gateway)
    d = replace(d, contact_cipher=cast(Any, type("Plain", (), {"decrypt": lambda self, c, aad: "13800135678"})()))
    messages = FakeMessages()
    messages.due = [claimed(t) for t in ("ok", "done", "bad", "away")]

    @asynccontextmanager
    async def open_uow() -> AsyncIterator[NotificationUnitOfWork]:
        yield FakeUnitOfWork(messages=messages)

    sender = Sender(d, open_uow)
    before = datetime.now(UTC)
    assert await sender.send_due() is True
    assert await sender.send_due() is False  # nothing more due: idle
    outcomes = {o.message.body: o for o in messages.outcomes}
    assert {k: o.status for k, o in outcomes.items()} == {"ok": "sent", "done": "delivered", "bad": "failed",
                                                          "away": "pending"}
    assert outcomes["bad"].reason == "not_mobile" and outcomes["ok"].gateway_id and outcomes["ok"].sent_at
    assert outcomes["away"].not_before >= before + timedelta(seconds=d.settings.sms_resend_backoff_s)
    assert [s.idempotency_key for s in gateway.sent] == [str(m.message.id) for m in messages.outcomes]
    assert len(gateway.batches) == 1 and {s.to for s in gateway.sent} == {"13800135678"}, \
        "the pass's messages go in one request, each with its number"
    night = Sender(replace(d, wording=replace(d.wording, quiet=QuietHours.parse("00:00-23:59"))), open_uow)
    messages.due = [claimed("ok")]
    assert await night.send_due() is False and len(messages.due) == 1
    assert messages.settled == 1, "the sweep over every unsent message runs now and then, not every pass"
    assert messages.unsticks == 1, "what a crash left sending is looked for now and then, not every pass"


async def test_a_delivery_report_moves_only_a_message_still_open_to_it() -> None:
    uow = FakeUnitOfWork()
    sent, sending, final = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    uow.messages.rows = {sent: {"status": "sent"}, sending: {"status": "sending"}, final: {"status": "failed"}}
    moved = await record_delivery_reports(uow, [
        DeliveryReport(sent, "delivered"), DeliveryReport(final, "delivered"),
        DeliveryReport(uuid.uuid4(), "delivered"),
        DeliveryReport(sending, "undeliverable", "switched_off"), DeliveryReport(sent, "undeliverable", "late")])
    assert moved == 2
    assert sorted(uow.messages.reports) == sorted([(sent, "delivered"), (sending, "undeliverable")]), \
        "the first word on a message reported twice in a batch is the one taken"


def test_a_batch_of_reports_is_one_per_message_in_id_order() -> None:
    ids = sorted(uuid.uuid4() for _ in range(3))
    reports = [DeliveryReport(ids[2], "delivered"), DeliveryReport(ids[0], "undeliverable", "off"),
               DeliveryReport(ids[2], "undeliverable", "late"), DeliveryReport(ids[1], "delivered")]
    assert one_per_message(reports) == [reports[1], reports[3], reports[0]]


async def test_a_pass_sends_its_messages_sms_batch_max_to_a_request() -> None:
    gateway = FakeGateway({})
    d = deps(gateway=gateway)
    d = replace(d, settings=d.settings.model_copy(update={"sms_batch_max": 2}),
                contact_cipher=cast(Any, type("Plain", (), {"decrypt": lambda self, c, aad: "13800135678"})()))
    messages = FakeMessages()
    messages.due = [claimed(f"text {i}") for i in range(5)]

    @asynccontextmanager
    async def open_uow() -> AsyncIterator[NotificationUnitOfWork]:
        yield FakeUnitOfWork(messages=messages)

    assert await Sender(d, open_uow).send_due() is True
    assert [len(b) for b in gateway.batches] == [2, 2, 1]
    assert [o.status for o in messages.outcomes] == ["sent"] * 5
    assert [str(o.message.id) for o in messages.outcomes] == [s.idempotency_key for b in gateway.batches for s in b]


class CountingRecipients(FakeRecipients):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[set[str]] = []

    async def get_many(self, refs: Iterable[str]) -> dict[str, Recipient]:
        self.reads.append(set(refs))
        return await super().get_many(refs)


class CountingView(FakeView):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[set[uuid.UUID]] = []

    async def places(self, settlement_ids: set[uuid.UUID]) -> dict[uuid.UUID, Place]:
        if settlement_ids:  # as the repository: no statement for none
            self.reads.append(set(settlement_ids))
        return await super().places(settlement_ids)


def screened(sid: uuid.UUID, eligible: bool = False) -> ev.EligibilityDecided:
    settlement = ev.SettlementReceived(
        settlement_id=sid, hospital_id="H001", hospital_settlement_id=f"N-{sid.hex[:8]}", hospital_level=2,
        visit_type="inpatient", admission_date=date(2026, 2, 20), discharge_date=date(2026, 3, 2),
        total_amount=Decimal("9000.00"), policy_scope_amount=Decimal("8000.00"),
        basic_insurance_paid=Decimal("5000.00"), critical_illness_paid=Decimal("1000.00"))
    return ev.EligibilityDecided(settlement=settlement, eligible=eligible, reason="not_registered",
                                 district_code="310110", subdistrict_code="310110001")


@pytest.mark.parametrize(("batch", "contact_reads", "place_reads"), [
    ("screened", 0, 0),  # screening decisions call for no message: the view only, nothing read
    ("calculated+paid", 1, 0),  # a calculation says where itself, a transfer's text names no place
    ("approved", 1, 1),  # an approval's text may name the hospital and the date: the view's
])
async def test_a_batch_reads_only_what_its_messages_need(batch: str, contact_reads: int, place_reads: int) -> None:
    recipients, view = CountingRecipients(), CountingView()
    uow = FakeUnitOfWork(recipients=recipients, view=view)
    sid = uuid.uuid4()
    calculated, approved, paid = journey(sid)
    events = {"screened": [event(screened(sid)), event(screened(uuid.uuid4()), ref="8" * 64)],
              "calculated+paid": [event(screened(sid, eligible=True)), event(calculated), event(paid)],
              "approved": [event(screened(sid, eligible=True)), event(approved)]}[batch]
    await events_handler(runtime(deps()))(uow, events)
    assert len(recipients.reads) == contact_reads and len(view.reads) == place_reads
    assert all(reads == {REF} for reads in recipients.reads), "the contacts of the persons messages go to"
    assert all(reads == {sid} for reads in view.reads)
    assert len(uow.messages.rows) == len(events) - 1 if batch != "screened" else not uow.messages.rows
    assert sid in view.rows, "every screening decision is in the resident's view, message or not"


@pytest.mark.parametrize(("due", "waits"), [(1, True), (2, False)])
async def test_a_pass_woken_soon_after_the_last_waits_unless_the_last_took_a_full_batch(due: int, waits: bool) -> None:
    gateway = FakeGateway({})
    d = deps(gateway=gateway)
    d = replace(d, settings=d.settings.model_copy(update={"worker_batch": 2, "sms_pass_min_s": 0.3}),
                contact_cipher=cast(Any, type("Plain", (), {"decrypt": lambda self, c, aad: "13800135678"})()))
    messages = FakeMessages()
    messages.due = [claimed(f"text {i}") for i in range(due)]

    @asynccontextmanager
    async def open_uow() -> AsyncIterator[NotificationUnitOfWork]:
        yield FakeUnitOfWork(messages=messages)

    sender = Sender(d, open_uow)
    assert await sender.send_due() is True
    started = time.monotonic()
    await sender.send_due()
    assert (time.monotonic() - started >= 0.25) is waits


async def test_each_message_keeps_its_span_in_its_trace_and_the_request_runs_under_the_first_sampled(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ADR 0051: a batch's messages keep their own `sms send` spans; the one request is an `sms batch` span, a
    child of the first sampled message's, linked to the other sampled ones; an unsampled message leaves nothing."""
    from notification.service_layer import sender as sender_module
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from shared import telemetry

    exported = InMemorySpanExporter()
    keep = telemetry.KeepErrorsAndSlow([SimpleSpanProcessor(exported)], slow_ms=60_000, max_per_s=1000)
    provider = TracerProvider(sampler=telemetry.RecordUnsampledEntries(ParentBased(TraceIdRatioBased(0.0))))
    provider.add_span_processor(keep)
    for name in ("_sdk", "_keep", "_random_ids"):  # put back after the test: the services' one EntrySpans
        monkeypatch.setattr(telemetry.entry_spans, name, getattr(telemetry.entry_spans, name))
    telemetry.entry_spans.use(provider, keep)
    monkeypatch.setattr(sender_module, "tracer", provider.get_tracer("test"))
    gateway = FakeGateway({})
    d = replace(deps(gateway=gateway),
                contact_cipher=cast(Any, type("Plain", (), {"decrypt": lambda self, c, aad: "13800135678"})()))
    traces = [uuid.uuid4().hex for _ in range(3)]
    flags = ["01", "00", "01"]  # sampled, unsampled, sampled
    messages = FakeMessages()
    messages.due = [replace(claimed(f"text {i}"), traceparent=f"00-{t}-{uuid.uuid4().hex[:16]}-{f}")
                    for i, (t, f) in enumerate(zip(traces, flags, strict=True))]

    @asynccontextmanager
    async def open_uow() -> AsyncIterator[NotificationUnitOfWork]:
        yield FakeUnitOfWork(messages=messages)

    assert await Sender(d, open_uow).send_due() is True
    spans = exported.get_finished_spans()
    sends = [s for s in spans if s.name == "sms send"]
    [request] = [s for s in spans if s.name == "sms batch"]
    assert sorted(f"{s.context.trace_id:032x}" for s in sends) == sorted([traces[0], traces[2]]), \
        "a span for each sampled message, in its own trace; none for the unsampled one"
    first = next(s for s in sends if f"{s.context.trace_id:032x}" == traces[0])
    assert request.parent is not None and request.parent.span_id == first.context.span_id
    assert [link.context.trace_id for link in request.links] == [int(traces[2], 16)]
    assert (first.attributes or {})["sms.batch_size"] == 3 and "message.id" in (first.attributes or {})
