"""Approval's service layer through the bootstrap-built CaseService, on fake repositories: opening cases, what
staff and the system do to them, and what is announced. Rules are tables; the database is in-memory."""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from approval.bootstrap import case_service
from approval.config import ApprovalSettings
from approval.dependencies import dependencies
from approval.domain.case import Action, CaseState
from approval.service_layer.cases import Act, CaseService
from opentelemetry import trace

from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.contracts.topics import ASSISTANCE_CALCULATED, CASE_DECIDED, TRANSFER_SETTLED
from shared.errors import DomainError
from shared.messaging.consumer import Event
from shared.security.area import Area
from shared.security.roles import Role

from .fakes import FakeDatabase

SUB, DISTRICT = "310110001", "310110"
CLERK_AREA, REVIEWER_AREA, ELSEWHERE = Area(DISTRICT, SUB), Area(DISTRICT), Area(DISTRICT, "310110002")
REF = "ab" * 32


def build(**settings: Any) -> tuple[CaseService, FakeDatabase]:
    config = ApprovalSettings(**settings)
    db = FakeDatabase(config)
    return case_service(dependencies(config), db.start), db


def event(data: ev.EventData, topic: str = ASSISTANCE_CALCULATED, ref: str = REF) -> Event:
    return Event(topic, Envelope.wrap(data, person_ref=ref, producer="test"), data, record=None,  # type: ignore[arg-type]
                 span=trace.INVALID_SPAN)


def calculated(amount: str) -> ev.AssistanceCalculated:
    money, zero = Decimal(amount), Decimal("0.00")
    return ev.AssistanceCalculated(
        calculation_id=uuid.uuid4(), settlement_id=uuid.uuid4(), hospital_id="H001", category="subsistence",
        district_code=DISTRICT, subdistrict_code=SUB, visit_type="inpatient", hospital_level=2,
        hospital_settlement_id="S-1", admission_date=date(2026, 2, 20), discharge_date=date(2026, 3, 1), year=2026,
        policy_id="p", policy_version=1, total_amount=money,
        figures=ev.AssistanceFigures(
            policy_scope_amount=money, basic_insurance_paid=zero, critical_illness_paid=zero, base=money,
            deductible=zero, deductible_used_before=zero, deductible_left=zero, deductible_applied=zero,
            ratio=Decimal("1.00"), amount_before_caps=money, per_settlement_cap=None,
            amount_after_settlement_cap=money, cap=Decimal("60000.00"), committed_before=zero,
            cap_left=Decimal("60000.00"), assistance=money))


async def consume(service: CaseService, db: FakeDatabase, *data: ev.EventData) -> None:
    uow = db.unit_of_work()
    await service.handle(uow, [event(d, TRANSFER_SETTLED if isinstance(d, ev.TransferSettled) else
                                     ASSISTANCE_CALCULATED) for d in data])
    db.commit(uow)


async def open_case(service: CaseService, db: FakeDatabase, amount: str = "100.00") -> uuid.UUID:
    calc = calculated(amount)
    await consume(service, db, calc)
    return next(c.id for c in db.cases.rows.values() if c.calculation_id == calc.calculation_id)


def decisions(db: FakeDatabase) -> list[tuple[str, str, str, str | None]]:
    """(topic, key, decision, reason) of every event committed."""
    return [(o.topic, o.envelope.person_ref, o.envelope.data["decision"], o.envelope.data["reason_code"])
            for o in db.published]


def trail(db: FakeDatabase, case_id: uuid.UUID) -> list[tuple[str, str, str | None, str]]:
    return [(e.actor, str(e.action), e.from_state and e.from_state.value, e.to_state.value)
            for e in db.cases.trail[case_id]]


async def test_a_calculation_opens_one_case_and_nothing_to_pay_opens_none() -> None:
    service, db = build()
    calc = calculated("120.50")
    await consume(service, db, calc, calculated("0.00"), calc)  # the second copy under a new event id
    [case] = db.cases.rows.values()
    assert (case.state, case.amount, case.person_ref, case.subdistrict_code) == (
        CaseState.AWAITING_SUBDISTRICT, Decimal("120.50"), REF, SUB)
    assert trail(db, case.id) == [("system", "open", None, "awaiting_subdistrict")]
    assert len(db.calculations.rows) == 2, "every calculation is kept for the year, those with nothing to pay too"
    assert db.published == [], "opening decides nothing"


async def test_the_case_keeps_the_payload_as_the_model_dumps_it_from_the_wire_or_from_an_upcast() -> None:
    service, db = build()
    current, upcast = calculated("120.50"), calculated("80.00")
    wire = Envelope.from_bytes(Envelope.wrap(current, person_ref=REF, producer="test").to_bytes())
    # An envelope whose data is not the current version's form (as an upcast one is): the model's dump is kept.
    old = wire.model_copy(update={"schema_version": 1, "data": {"calculation_id": str(upcast.calculation_id)}})
    uow = db.unit_of_work()
    await service.handle(uow, [Event(ASSISTANCE_CALCULATED, e, d, record=None,  # type: ignore[arg-type]
                                     span=trace.INVALID_SPAN) for e, d in ((wire, current), (old, upcast))])
    db.commit(uow)
    kept = {c.calculation_id: c.calculation for c in db.cases.rows.values()}
    assert kept[current.calculation_id] == current.model_dump(mode="json")
    assert kept[current.calculation_id] is wire.data, "the wire's form of the current version, not a second dump"
    assert kept[upcast.calculation_id] == upcast.model_dump(mode="json")


async def test_the_benchmarks_auto_approval_decides_at_once() -> None:
    service, db = build(bench_auto_approve=True)
    case_id = await open_case(service, db)
    assert db.cases.rows[case_id].state is CaseState.APPROVED
    assert trail(db, case_id) == [("system", "open", None, "awaiting_subdistrict"),
                                  ("system", "approve", "awaiting_subdistrict", "approved")]
    assert decisions(db) == [(CASE_DECIDED, REF, "approved", None)]


CLERK, REVIEWER = ("clerk-1", Role.clerk, CLERK_AREA), ("reviewer-1", Role.district_reviewer, REVIEWER_AREA)


@pytest.mark.parametrize(("settings", "steps", "state", "announced"), [
    ({}, [(CLERK, Action.APPROVE, None, None)], "awaiting_district", []),
    ({}, [(CLERK, Action.APPROVE, None, None), (REVIEWER, Action.APPROVE, None, None)], "approved",
     [("approved", None)]),
    ({"skip_district_threshold": Decimal("100.00")}, [(CLERK, Action.APPROVE, None, None)], "approved",
     [("approved", None)]),
    ({"skip_district_threshold": Decimal("99.99")}, [(CLERK, Action.APPROVE, None, None)], "awaiting_district", []),
    ({}, [(CLERK, Action.REJECT, "duplicate_claim", None)], "rejected", [("rejected", "duplicate_claim")]),
    ({}, [(CLERK, Action.APPROVE, None, None), (REVIEWER, Action.SEND_BACK, None, "check the date")],
     "awaiting_subdistrict", []),
    ({}, [(REVIEWER, Action.APPROVE, None, None)], "illegal_transition", []),
    ({}, [(CLERK, Action.REJECT, None, None)], "reason_required", []),
    ({}, [(CLERK, Action.REJECT, "other", " ")], "reason_required", []),
    ({}, [(("clerk-2", Role.clerk, ELSEWHERE), Action.APPROVE, None, None)], "case_not_found", []),
    ({}, [(REVIEWER, Action.APPROVE, None, None)], "illegal_transition", []),
    ({}, [(("zhang", Role.clerk, CLERK_AREA), Action.APPROVE, None, None),
          (("zhang", Role.district_reviewer, REVIEWER_AREA), Action.APPROVE, None, None)], "four_eyes_required", []),
])
async def test_staff_actions(settings: dict[str, Any], steps: list[Any], state: str,
                             announced: list[tuple[str, str | None]]) -> None:
    """Each row: the actions in order, then the case's state (or the last step's error code) and the decisions."""
    service, db = build(**settings)
    case_id = await open_case(service, db)
    outcome = None
    for (actor, party, area), action, reason, comment in steps:
        try:
            outcome = (await service.act(Act(case_id, action, actor, party, area, reason, comment))).state.value
        except DomainError as exc:
            outcome = exc.code
    assert outcome == state
    stored = db.cases.rows[case_id].state.value
    assert stored == (state if state in {s.value for s in CaseState} else stored)
    assert [(d, r) for _, _, d, r in decisions(db)] == announced
    assert len(trail(db, case_id)) == 1 + sum(1 for _ in steps) - (outcome not in {s.value for s in CaseState})
    released = db.calculations.released
    assert (db.cases.rows[case_id].calculation_id in released) is (stored == "rejected"), \
        "a rejected case gives its share of the year back"


async def test_a_refused_action_stores_and_announces_nothing() -> None:
    service, db = build()
    case_id = await open_case(service, db)
    with pytest.raises(DomainError):
        await service.act(Act(case_id, Action.SEND_BACK, "clerk-1", Role.clerk, CLERK_AREA, comment="no"))
    assert trail(db, case_id) == [("system", "open", None, "awaiting_subdistrict")] and db.published == []


async def test_a_batch_has_a_result_per_case_and_each_its_own_unit_of_work() -> None:
    service, db = build()
    first, second, done = [await open_case(service, db) for _ in range(3)]
    await service.act(Act(done, Action.APPROVE, "clerk-1", Role.clerk, CLERK_AREA))
    commits = db.commits
    unknown = uuid.uuid4()
    results = await service.approve_batch([first, second, first, done, unknown], "clerk-1", Role.clerk, CLERK_AREA,
                                          "batch")
    assert [(r.case_id, r.case.state.value if r.case else None, r.error.code if r.error else None)
            for r in results] == [(first, "awaiting_district", None), (second, "awaiting_district", None),
                                  (done, None, "illegal_transition"), (unknown, None, "case_not_found")]
    assert db.commits - commits == 2, "the refused ones rolled back"
    assert trail(db, first)[-1] == ("clerk-1", "approve", "awaiting_subdistrict", "awaiting_district")


def reversed_(calc: ev.AssistanceCalculated, recovery_id: uuid.UUID | None = None) -> ev.AssistanceReversed:
    return ev.AssistanceReversed(calculation_id=calc.calculation_id, settlement_id=calc.settlement_id,
                                 released_assistance=calc.figures.assistance, recovery_id=recovery_id)


def recovered(calc: ev.AssistanceCalculated, recovery_id: uuid.UUID) -> ev.RecoveryOpened:
    return ev.RecoveryOpened(recovery_id=recovery_id, calculation_id=calc.calculation_id,
                             settlement_id=calc.settlement_id, district_code=DISTRICT,
                             amount=calc.figures.assistance, opened_at=datetime.now(UTC))


RECOVERY = uuid.uuid4()


@pytest.mark.parametrize(("before", "events", "state", "announced"), [
    ("awaiting_subdistrict", ["reversed"], "cancelled", [("cancelled", "settlement_reversed")]),
    ("approved", ["reversed"], "cancelled", [("cancelled", "settlement_reversed")]),
    ("rejected", ["reversed"], "rejected", []),
    ("approved", ["reversed with recovery", "recovery"], "reversed_after_payment", []),
    ("approved", ["recovery", "recovery"], "reversed_after_payment", []),
    ("approved", ["reversed", "recovery"], "reversed_after_payment", [("cancelled", "settlement_reversed")]),
    ("awaiting_district", ["recovery"], "awaiting_district", []),  # never paid: recorded, the state stays
])
async def test_what_a_hospitals_reversal_does_to_a_case(before: str, events: list[str], state: str,
                                                         announced: list[tuple[str, str | None]]) -> None:
    """Each row: the case's state, then the events of one batch, then its state and what was announced."""
    service, db = build(skip_district_threshold=Decimal("1000.00") if before == "approved" else None)
    calc = calculated("100.00")
    await consume(service, db, calc)
    case_id = next(iter(db.cases.rows))
    if before != "awaiting_subdistrict":
        action = Action.REJECT if before == "rejected" else Action.APPROVE
        await service.act(Act(case_id, action, "clerk-1", Role.clerk, CLERK_AREA, reason="data_error"))
    db.published.clear()
    kinds = {"reversed": reversed_(calc), "reversed with recovery": reversed_(calc, RECOVERY),
             "recovery": recovered(calc, RECOVERY)}
    await consume(service, db, *[kinds[k] for k in events])
    case = db.cases.rows[case_id]
    assert case.state.value == state
    assert [(d, r) for _, _, d, r in decisions(db)] == announced
    assert (case.recovery_id == RECOVERY) is ("recovery" in events)
    assert sum(e.action == Action.OPEN_RECOVERY for e in db.cases.trail[case_id]) == (
        state == "reversed_after_payment")
    assert (calc.calculation_id in db.calculations.released) is ("reversed" in events or before == "rejected")


async def test_a_recovery_for_a_calculation_without_a_case_changes_nothing() -> None:
    service, db = build()
    await consume(service, db, recovered(calculated("10.00"), uuid.uuid4()))
    assert db.cases.rows == {} and db.published == []


async def test_the_banks_final_word_is_kept_and_a_failure_counted() -> None:
    service, db = build()
    case_id = await open_case(service, db)
    calc_id = db.cases.rows[case_id].calculation_id

    def settled(status: str) -> ev.TransferSettled:
        return ev.TransferSettled(payment_id=uuid.uuid4(), case_id=case_id, calculation_id=calc_id,
                                  settlement_id=uuid.uuid4(), status=status, amount=Decimal("100.00"),
                                  reason="account_closed" if status == "failed" else None)

    await consume(service, db, settled("failed"))
    await consume(service, db, settled("settled"))
    assert (db.cases.rows[case_id].payment_status, db.cases.rows[case_id].payment_failures) == ("settled", 1)
