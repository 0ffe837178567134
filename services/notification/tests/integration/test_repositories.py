"""Notification's repositories against the real PostgreSQL: the contract the fakes of tests/unit keep, on the
real tables (late contacts, topics in any order, one message per id, claims, outcomes, reports)."""

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from notification.adapters.repositories import ViewFacts
from notification.adapters.tables import ResidentSettlement
from notification.bootstrap import MIGRATIONS, events_handler
from notification.config import NotificationSettings
from notification.dependencies import NotificationDeps, Wording
from notification.domain.messages import DeliveryReport, NewMessage, Outcome
from notification.domain.moments import Place
from notification.domain.templates import Moment
from notification.service_layer.unit_of_work import NotificationUnitOfWork
from opentelemetry import trace
from sqlalchemy import text

from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    AssistanceCalculated,
    AssistanceFigures,
    CaseDecided,
    ContactUpdated,
    PayeeAccountUpdated,
    TransferSettled,
)
from shared.db import Database
from shared.messaging.consumer import Event
from shared.service import Runtime
from shared.testing import migrated_database, statements_sent
from shared.unit_of_work import unit_of_work

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def db() -> AsyncIterator[Database]:
    settings = NotificationSettings(database_name="test_notification_repositories")
    async with migrated_database(settings, MIGRATIONS) as database:  # the database only: no topics needed
        yield database


def contact(version: int, ciphertext: str | None, masked: str | None, opt_out: bool) -> ContactUpdated:
    return ContactUpdated(contact_version=version, phone_ciphertext=ciphertext, phone_masked=masked,
                          sms_opt_out=opt_out)


def ref() -> str:
    return uuid.uuid4().hex * 2


async def test_recipients_keep_the_newest_contact_and_every_account_version(db: Database) -> None:
    me, now = ref(), datetime.now(UTC)
    async with unit_of_work(db, NotificationUnitOfWork) as uow:
        await uow.recipients.store({me: contact(2, "c:new", "138****0002", False)}, {(me, 1): "6222****0001"},
                                   {me: "6222****0001"}, now)
    async with unit_of_work(db, NotificationUnitOfWork) as uow:
        await uow.recipients.store({me: contact(1, "c:old", "138****0001", True)}, {(me, 2): "6222****0002"},
                                   {me: "6222****0002"}, now)  # the older contact arrives late
        [recipient] = (await uow.recipients.get_many([me, ref()])).values()
        assert (recipient.contact_version, recipient.phone_ciphertext, recipient.sms_opt_out) == (2, "c:new", False)
        assert recipient.account_masked == "6222****0002"
        assert await uow.recipients.accounts({(me, 1), (me, 2), (me, 3)}) == {
            (me, 1): "6222****0001", (me, 2): "6222****0002"}
        assert await uow.recipients.accounts(set()) == {}


async def test_the_view_takes_each_kind_of_fact_in_any_order(db: Database) -> None:
    me, sid, now = ref(), uuid.uuid4(), datetime.now(UTC)
    base = {"settlement_id": sid, "person_ref": me, "updated_at": now}
    async with unit_of_work(db, NotificationUnitOfWork) as uow:  # the decision first, then a later payment
        await uow.view.apply(ViewFacts(reviewed={sid: {**base, "review_state": "approved", "review_reason": None}},
                                       paid={sid: {**base, "payment_status": "settled", "payment_reason": None,
                                                   "payment_attempt": 2, "paid_amount": Decimal("9.00"),
                                                   "paid_on": date(2026, 3, 9)}}))
    async with unit_of_work(db, NotificationUnitOfWork) as uow:  # a calculation and an older attempt, late
        await uow.view.apply(ViewFacts(
            decided={sid: {**base, "hospital_id": "H001", "visit_type": "inpatient", "discharge_date": date(2026, 3, 2),
                           "district_code": "310110", "subdistrict_code": "310110001", "eligible": True,
                           "eligibility_reason": "eligible"}},
            calculated={sid: {**base, "assistance": Decimal("9.00"), "district_code": "310110",
                              "subdistrict_code": "310110001", "review_state": "awaiting_review"}},
            paid={sid: {**base, "payment_status": "failed", "payment_reason": "account_closed", "payment_attempt": 1,
                        "paid_amount": None, "paid_on": date(2026, 3, 8)}},
            reversed={sid: {**base, "reversed": True, "recovery": True}}))
    async with unit_of_work(db, NotificationUnitOfWork) as uow:
        await uow.view.apply(ViewFacts(reversed={sid: {**base, "reversed": True, "recovery": False}}))
        assert await uow.view.places({sid, uuid.uuid4()}) == {sid: Place("H001", date(2026, 3, 2))}
        row = await uow.session.get_one(ResidentSettlement, sid)
    assert (row.review_state, row.assistance, row.district_code, row.subdistrict_code) == (
        "approved", Decimal("9.00"), "310110", "310110001")
    assert (row.payment_status, row.payment_attempt, row.paid_amount) == ("settled", 2, Decimal("9.00"))
    assert row.reversed and row.recovery, "a recovery once known stays"


def message(person: str, moment: Moment, at: datetime) -> NewMessage:
    return NewMessage(uuid.uuid4(), uuid.uuid4(), person, uuid.uuid4(), moment, 1, moment.value, "pending", at,
                      at - timedelta(seconds=1))


async def test_messages_are_written_once_claimed_in_order_and_moved_by_the_gateways_word(db: Database) -> None:
    me, now = ref(), datetime.now(UTC)
    first, second = message(me, Moment.APPROVED, now), message(me, Moment.PAID, now + timedelta(seconds=1))
    async with unit_of_work(db, NotificationUnitOfWork) as uow:
        await uow.recipients.store({me: contact(1, "c:x", "138****0001", False)}, {}, {}, now)
        assert await uow.messages.add([first, second], now) == ["case_approved", "transfer_settled"]
    async with unit_of_work(db, NotificationUnitOfWork) as uow:
        assert await uow.messages.add([first], now) == [], "the same id is written once"
        claimed = [c for c in await uow.messages.claim_due(1000, 60.0) if c.person_ref == me]
        assert [c.moment for c in claimed] == ["case_approved"], "a person's earliest unsent message only"
        assert claimed[0].phone_ciphertext == "c:x" and await uow.messages.waiting() >= 2
    async with unit_of_work(db, NotificationUnitOfWork) as uow:
        await uow.messages.record([Outcome.accepted(claimed[0], "gw-1", "accepted", now)], now)
        assert await uow.messages.report([DeliveryReport(claimed[0].id, "delivered"),
                                          DeliveryReport(uuid.uuid4(), "delivered")], now) == ["delivered"]
        assert await uow.messages.report([DeliveryReport(claimed[0].id, "undeliverable", "late")], now) == [], \
            "delivered is final"
        assert await uow.messages.report([DeliveryReport(uuid.uuid4(), "delivered")], now) == []
        claimed = [c for c in await uow.messages.claim_due(1000, 60.0) if c.person_ref == me]
        assert [c.moment for c in claimed] == ["transfer_settled"]
        await uow.messages.record([Outcome.unreachable(claimed[0], now, 30.0)], now)
    async with unit_of_work(db, NotificationUnitOfWork) as uow:
        assert [c for c in await uow.messages.claim_due(1000, 60.0) if c.person_ref == me] == [], "not yet due"
        rows = (await uow.session.execute(text(
            "SELECT moment, status, gateway_id, attempts, delivered_at IS NOT NULL FROM message "
            "WHERE person_ref = :ref ORDER BY seq"), {"ref": me})).all()
    assert [tuple(r) for r in rows] == [("case_approved", "delivered", "gw-1", 1, True),
                                        ("transfer_settled", "pending", None, 1, False)]


async def test_a_message_waits_held_for_a_phone_then_follows_the_persons_contact(db: Database) -> None:
    me, late, now = ref(), ref(), datetime.now(UTC)
    first, second = (replace(message(me, moment, now + timedelta(seconds=i)), status="held")
                     for i, moment in enumerate((Moment.APPROVED, Moment.PAID)))

    async def claim(who: str) -> list[str]:
        async with unit_of_work(db, NotificationUnitOfWork) as uow:
            return [c.moment for c in await uow.messages.claim_due(1000, 60.0) if c.person_ref == who]

    async def statuses(who: str) -> list[str]:
        async with unit_of_work(db, NotificationUnitOfWork) as uow:
            return list((await uow.session.execute(text(
                "SELECT status FROM message WHERE person_ref = :ref ORDER BY occurred_at"), {"ref": who})).scalars())

    async with unit_of_work(db, NotificationUnitOfWork) as uow:
        await uow.messages.add([first, second], now)
        await uow.recipients.store({me: contact(1, None, None, False)}, {}, {}, now)  # known, still no phone
        await uow.messages.follow_contacts([me])
    assert await claim(me) == [] and await statuses(me) == ["held", "held"]
    async with unit_of_work(db, NotificationUnitOfWork) as uow:
        await uow.recipients.store({me: contact(2, "c:x", "138****0001", False)}, {}, {}, now)
        await uow.messages.follow_contacts([me])
    assert await claim(me) == ["case_approved"], "released in order: the earliest first"
    async with unit_of_work(db, NotificationUnitOfWork) as uow:
        await uow.recipients.store({me: contact(3, "c:x", "138****0001", True)}, {}, {}, now)
        await uow.messages.follow_contacts([me])
    assert await statuses(me) == ["sending", "suppressed"], "an opt-out suppresses what was not handed over"

    # A contact stored by another instance while this one wrote the message (neither saw the other): the
    # message stays held until the sender's sweep, which then releases it.
    async with unit_of_work(db, NotificationUnitOfWork) as uow:
        await uow.messages.add([replace(message(late, Moment.APPROVED, now), status="held")], now)
        await uow.recipients.store({late: contact(1, "c:y", "138****0002", False)}, {}, {}, now)
    assert await claim(late) == []
    async with unit_of_work(db, NotificationUnitOfWork) as uow:
        await uow.messages.settle_all()
    assert await claim(late) == ["case_approved"]


def journey_events(person: str) -> list[Event]:
    sid, calc, case = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    zero, amount = Decimal("0.00"), Decimal("12.00")
    figures = AssistanceFigures(
        policy_scope_amount=amount, basic_insurance_paid=zero, critical_illness_paid=zero, base=amount,
        deductible=zero, deductible_used_before=zero, deductible_left=zero, deductible_applied=zero,
        ratio=Decimal("1"), amount_before_caps=amount, per_settlement_cap=None, amount_after_settlement_cap=amount,
        cap=Decimal("100.00"), committed_before=zero, cap_left=Decimal("100.00"), assistance=amount)
    area = {"district_code": "310110", "subdistrict_code": "310110001"}
    facts = [
        contact(1, "c:x", "138****0001", False),
        PayeeAccountUpdated(account_version=1, payee_ciphertext="p:x", account_masked="6222****0001"),
        AssistanceCalculated(calculation_id=calc, settlement_id=sid, hospital_id="H001", category="subsistence",
                             **area, visit_type="inpatient", hospital_level=2, discharge_date=date(2026, 3, 2),
                             year=2026, policy_id="p", policy_version=1, figures=figures),
        CaseDecided(case_id=case, calculation_id=calc, settlement_id=sid, decision="approved", amount=amount, **area,
                    decided_at=datetime.now(UTC)),
        TransferSettled(payment_id=uuid.uuid4(), case_id=case, calculation_id=calc, settlement_id=sid,
                        status="settled", amount=amount, account_version=1),
    ]
    return [Event("topic", Envelope.wrap(data, person_ref=person, producer="test"), data, cast(Any, None),
                  trace.INVALID_SPAN) for data in facts]


async def test_a_batch_costs_the_same_statements_for_one_person_or_fifty(db: Database) -> None:
    """The consumer stays bulk: one statement per table and kind of fact per batch, whatever its size."""
    settings = NotificationSettings()
    wording = Wording.from_settings(settings)
    nothing: Any = None
    handler = events_handler(Runtime(nothing, nothing, nothing, nothing, nothing,
                                     NotificationDeps.build(settings, wording)))
    costs = []
    for persons in (1, 50):
        batch = [e for _ in range(persons) for e in journey_events(ref())]
        with statements_sent(db) as sent:
            async with unit_of_work(db, NotificationUnitOfWork) as uow:
                await handler(uow, batch)
        costs.append(len(sent))
        async with unit_of_work(db, NotificationUnitOfWork) as uow:
            written = (await uow.session.execute(text("SELECT count(*) FROM message WHERE person_ref = ANY(:refs)"),
                                                 {"refs": list({e.envelope.person_ref for e in batch})})).scalar_one()
        assert written == 3 * persons
    # 3 for contacts and accounts, 1 to bring the persons' unsent messages in line with their contacts, 3 view
    # upserts, 3 reads, 1 insert of messages
    assert costs == [11, 11]
