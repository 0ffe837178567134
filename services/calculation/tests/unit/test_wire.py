"""The JSON forms calculation writes without pydantic's serializer: the same keys, order and values as the model's
dump, and the same text for the row's JSON columns."""

import uuid
from datetime import date
from decimal import Decimal

import orjson
import pytest
from calculation.adapters.repositories import _row
from calculation.domain.calculation import Calculation, Ledgers
from calculation.domain.wire import calculated_json, figures_json
from calculation.policies import demo_policies

from shared.contracts import events as ev
from shared.contracts.envelope import Envelope

REF = "cd" * 32


def decided(scope: str, basic: str, level: int, visit: str, category: str, district: str) -> ev.EligibilityDecided:
    s = ev.SettlementReceived(
        settlement_id=uuid.uuid4(), hospital_id="H001", hospital_settlement_id="W-1", hospital_level=level,
        visit_type=visit, admission_date=date(2026, 3, 1), discharge_date=date(2026, 3, 4),
        total_amount=Decimal(scope) + Decimal("10.00"), policy_scope_amount=Decimal(scope),
        basic_insurance_paid=Decimal(basic), critical_illness_paid=Decimal("0.00"))
    return ev.EligibilityDecided(settlement=s, eligible=True, reason="eligible", category=category,
                                 district_code=district, subdistrict_code=f"{district}001")


CASES = [(scope, basic, level, visit, category, district)
         for scope, basic in [("0.00", "0.00"), ("100.01", "0.00"), ("48000.00", "1200.50"), ("33.33", "40.00")]
         for level, visit in [(1, "inpatient"), (3, "outpatient"), (2, "outpatient_chronic")]
         for category in ("low_income", "subsistence", "extreme_poverty")
         for district in ("310107", "310110")]


@pytest.mark.parametrize(("scope", "basic", "level", "visit", "category", "district"), CASES)
def test_the_event_and_its_figures_are_written_as_the_model_dumps_them(
        scope: str, basic: str, level: int, visit: str, category: str, district: str) -> None:
    calc = Calculation.of(uuid.uuid4(), REF, decided(scope, basic, level, visit, category, district))
    assert calc.calculate(demo_policies(), Ledgers())
    [event] = calc.events
    assert isinstance(event, ev.AssistanceCalculated)
    dumped = event.model_dump(mode="json")
    written = calculated_json(event)
    assert list(written) == list(dumped) and written == dumped
    assert list(written["figures"]) == list(dumped["figures"])
    assert orjson.dumps(figures_json(event.figures)).decode() == event.figures.model_dump_json()
    assert ev.AssistanceCalculated.model_validate(written) == event


def test_an_upcast_form_with_nulls_is_written_as_the_model_dumps_it() -> None:
    calc = Calculation.of(uuid.uuid4(), REF, decided("2500.00", "100.00", 2, "inpatient", "subsistence", "310110"))
    assert calc.calculate(demo_policies(), Ledgers())
    event = calc.events[0].model_copy(update={"hospital_settlement_id": None, "admission_date": None,
                                               "total_amount": None})
    assert isinstance(event, ev.AssistanceCalculated)
    assert list(calculated_json(event).items()) == list(event.model_dump(mode="json").items())


def test_the_row_keeps_the_settlement_as_received_or_as_dumped() -> None:
    decision = decided("2500.00", "100.00", 2, "inpatient", "subsistence", "310110")
    wire = Envelope.from_bytes(Envelope.wrap(decision, person_ref=REF, producer="t").to_bytes()).data["settlement"]
    rows = []
    for settlement_json in (wire, None):
        calc = Calculation.of(uuid.uuid4(), REF, decision, settlement_json)
        assert calc.calculate(demo_policies(), Ledgers())
        rows.append(_row(calc))
    assert rows[0]["settlement"] == rows[1]["settlement"] == decision.settlement.model_dump_json()
    assert rows[0]["figures"] == rows[1]["figures"]
