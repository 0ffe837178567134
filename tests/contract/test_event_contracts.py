"""The code's event models and the JSON Schemas in contracts/ say the same thing."""

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import jsonschema
import pytest
import yaml

from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.contracts.generate import CONTRACTS, asyncapi, event_schemas
from shared.contracts.topics import TOPIC_EVENTS, all_topics

PERSON = "ab" * 32
SETTLEMENT = ev.SettlementReceived(
    settlement_id=uuid.uuid4(), hospital_id="H001", hospital_settlement_id="S-1", hospital_level=3,
    visit_type="inpatient", admission_date=date(2026, 2, 1), discharge_date=date(2026, 2, 9),
    total_amount=Decimal("12000.00"), policy_scope_amount=Decimal("10000.00"),
    basic_insurance_paid=Decimal("6000.00"), critical_illness_paid=Decimal("1500.00"),
)
SAMPLES: list[ev.EventData] = [
    SETTLEMENT,
    ev.SettlementReversed(settlement_id=uuid.uuid4(), hospital_id="H001", hospital_settlement_id="S-1",
                          reversed_at=datetime.now(UTC), reason="duplicate"),
    ev.EligibilityDecided(settlement=SETTLEMENT, eligible=True, reason="eligible", category="subsistence",
                          district_code="310110", subdistrict_code="310110001"),
    ev.AssistanceCalculated(
        calculation_id=uuid.uuid4(), settlement_id=uuid.uuid4(), hospital_id="H001", category="subsistence",
        district_code="310110", subdistrict_code="310110001", visit_type="inpatient", hospital_level=3,
        discharge_date=date(2026, 2, 9), year=2026, policy_id="yangpu-2026", policy_version=1,
        policy_scope_amount=Decimal("10000.00"), basic_insurance_paid=Decimal("6000.00"),
        critical_illness_paid=Decimal("1500.00"), base=Decimal("2500.00"), deductible_applied=Decimal("0.00"),
        ratio=Decimal("0.75"), amount_before_caps=Decimal("1875.00"), assistance=Decimal("1875.00"),
        breakdown={"base": "2500.00"},
    ),
    ev.AssistanceReversed(calculation_id=uuid.uuid4(), settlement_id=uuid.uuid4(),
                          released_assistance=Decimal("10.00")),
    ev.CaseDecided(case_id=uuid.uuid4(), calculation_id=uuid.uuid4(), settlement_id=uuid.uuid4(),
                   decision="approved", amount=Decimal("1875.00"), district_code="310110",
                   subdistrict_code="310110001", decided_at=datetime.now(UTC)),
    ev.TransferSettled(payment_id=uuid.uuid4(), case_id=uuid.uuid4(), calculation_id=uuid.uuid4(),
                       settlement_id=uuid.uuid4(), status="settled", amount=Decimal("1875.00"),
                       bank_reference="B1"),
    ev.PayeeAccountUpdated(account_version=1, payee_ciphertext="k1:abc", account_masked="****1234"),
]


def committed_schema(name: str) -> dict:  # type: ignore[type-arg]
    return json.loads((CONTRACTS / "events" / f"{name}.schema.json").read_text())


@pytest.mark.parametrize("name", sorted(event_schemas()))
def test_committed_schema_matches_the_code(name: str) -> None:
    assert committed_schema(name) == event_schemas()[name], "run `make contracts` and commit the result"


def test_asyncapi_matches_the_code() -> None:
    committed = yaml.safe_load((CONTRACTS / "asyncapi.yaml").read_text())
    assert committed == asyncapi(), "run `make contracts` and commit the result"
    assert set(committed["channels"]) == set(all_topics())


def test_every_event_type_has_a_sample() -> None:
    assert {type(s).__name__ for s in SAMPLES} == {m.__name__ for ms in TOPIC_EVENTS.values() for m in ms}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_what_the_code_sends_validates_against_the_committed_schema(sample: ev.EventData) -> None:
    wire = json.loads(Envelope.wrap(sample, person_ref=PERSON, producer="test").to_bytes())
    jsonschema.validate(wire, committed_schema(type(sample).__name__))
    assert Envelope.model_validate(wire).payload() == sample


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        (lambda w: w["data"].update(total_amount=12000.0), "money as a JSON number"),
        (lambda w: w["data"].update(total_amount="12000.001"), "three decimal places"),
        (lambda w: w["data"].update(national_id="110101199003074578"), "an unknown (personal) field"),
        (lambda w: w.update(person_ref="not-a-ref"), "a person_ref that is not a pseudonym"),
        (lambda w: w["data"].update(hospital_level=4), "hospital level out of range"),
    ],
)
def test_schema_and_model_both_refuse_bad_events(mutate, why: str) -> None:  # type: ignore[no-untyped-def]
    wire = json.loads(Envelope.wrap(SETTLEMENT, person_ref=PERSON, producer="test").to_bytes())
    mutate(wire)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wire, committed_schema("SettlementReceived"))
    with pytest.raises(ValueError):
        Envelope.model_validate(wire).payload()
