"""The code's event models and the JSON Schemas in contracts/ say the same thing."""

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import jsonschema
import orjson
import pytest
import yaml
from pydantic import ValidationError

from shared.contracts import events as ev
from shared.contracts.envelope import Envelope, UnknownEventType
from shared.contracts.generate import CONTRACTS, asyncapi, event_schemas
from shared.contracts.topics import TOPIC_EVENTS, all_topics
from shared.contracts.versions import UnknownSchemaVersion

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
        hospital_settlement_id="S-1", admission_date=date(2026, 2, 1),
        discharge_date=date(2026, 2, 9), year=2026, policy_id="yangpu-2026", policy_version=1,
        total_amount=Decimal("12000.00"),
        figures=ev.AssistanceFigures(
            policy_scope_amount=Decimal("10000.00"), basic_insurance_paid=Decimal("6000.00"),
            critical_illness_paid=Decimal("1500.00"), base=Decimal("2500.00"), deductible=Decimal("0.00"),
            deductible_used_before=Decimal("0.00"), deductible_left=Decimal("0.00"),
            deductible_applied=Decimal("0.00"), ratio=Decimal("0.75"), amount_before_caps=Decimal("1875.00"),
            per_settlement_cap=None, amount_after_settlement_cap=Decimal("1875.00"), cap=Decimal("60000.00"),
            committed_before=Decimal("0.00"), cap_left=Decimal("60000.00"), assistance=Decimal("1875.00")),
    ),
    ev.AssistanceReversed(calculation_id=uuid.uuid4(), settlement_id=uuid.uuid4(),
                          released_assistance=Decimal("10.00")),
    ev.RecoveryOpened(recovery_id=uuid.uuid4(), calculation_id=uuid.uuid4(), settlement_id=uuid.uuid4(),
                      district_code="310110", amount=Decimal("1875.00"), opened_at=datetime.now(UTC)),
    ev.CaseDecided(case_id=uuid.uuid4(), calculation_id=uuid.uuid4(), settlement_id=uuid.uuid4(),
                   decision="approved", amount=Decimal("1875.00"), district_code="310110",
                   subdistrict_code="310110001", decided_at=datetime.now(UTC)),
    ev.TransferSettled(payment_id=uuid.uuid4(), case_id=uuid.uuid4(), calculation_id=uuid.uuid4(),
                       settlement_id=uuid.uuid4(), status="settled", amount=Decimal("1875.00"),
                       bank_reference="B1"),
    ev.PayeeAccountUpdated(account_version=1, payee_ciphertext="k1:abc", account_masked="****1234"),
    ev.PolicyPublished(policy_id="yangpu-310110", policy_version=2, region_code="310110",
                       effective_from=date(2027, 1, 1), consent_lookback="none", published_at=datetime.now(UTC)),
    ev.PersonRecorded(identity_ciphertext="v1:abc", district_code="310110", subdistrict_code="310110001",
                      periods=[ev.CategoryPeriod(category="subsistence", valid_from=date(2026, 1, 1))],
                      consents=[ev.ConsentPeriod(signed_on=date(2026, 1, 5))], account_version=1),
    ev.ContactUpdated(contact_version=1, phone_ciphertext="c1:abc", phone_masked="138****5678"),
    ev.PersonsRecorded(persons=[ev.RecordedPerson(
        person_ref=PERSON, identity_ciphertext="v1:abc", district_code="310110", subdistrict_code="310110001",
        periods=[ev.CategoryPeriod(category="subsistence", valid_from=date(2026, 1, 1))],
        consents=[ev.ConsentPeriod(signed_on=date(2026, 1, 5))], account_version=1)]),
    ev.PayeeAccountsUpdated(accounts=[ev.UpdatedPayeeAccount(
        person_ref=PERSON, account_version=1, payee_ciphertext="k1:abc", account_masked="****1234")]),
    ev.ContactsUpdated(contacts=[ev.UpdatedContact(person_ref=PERSON, contact_version=1, sms_opt_out=True)]),
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


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("microsecond", [0, 1, 120000, 999999])
def test_the_envelope_is_written_as_pydantic_would_write_it(sample: ev.EventData, microsecond: int) -> None:
    """to_bytes writes the fields itself (orjson) for speed: the bytes are pydantic's JSON dump of the model."""
    envelope = Envelope.wrap(sample, person_ref=PERSON, producer="test")
    envelope = envelope.model_copy(update={"occurred_at": envelope.occurred_at.replace(microsecond=microsecond)})
    assert json.loads(envelope.to_bytes()) == json.loads(envelope.model_dump_json())
    assert envelope.to_bytes() == orjson.dumps(envelope.model_dump(mode="json"))
    assert Envelope.from_bytes(envelope.to_bytes()) == envelope


def test_a_new_envelope_has_a_time_ordered_id_that_round_trips() -> None:
    """Event ids are UUID version 7 (docs/decisions/0048): successive ones increase, so the consumers' inbox
    claims write the right edge of its primary key; the id comes back unchanged from the wire."""
    envelopes = [Envelope.wrap(sample, person_ref=PERSON, producer="test") for sample in SAMPLES * 3]
    ids = [e.event_id for e in envelopes]
    assert {i.version for i in ids} == {7}
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for envelope in envelopes:
        assert Envelope.from_bytes(envelope.to_bytes()) == envelope
        assert Envelope.model_validate(json.loads(envelope.to_bytes())).event_id == envelope.event_id
    given = uuid.uuid4()
    assert Envelope.wrap(SAMPLES[0], person_ref=PERSON, producer="test", event_id=given).event_id == given


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


V1_CALCULATED = {
    "calculation_id": str(uuid.uuid4()), "settlement_id": str(uuid.uuid4()), "hospital_id": "H001",
    "category": "low_income", "district_code": "310110", "subdistrict_code": "310110001", "visit_type": "inpatient",
    "hospital_level": 2, "discharge_date": "2026-03-01", "year": 2026, "policy_id": "yangpu-310110",
    "policy_version": 1, "policy_scope_amount": "5000.00", "basic_insurance_paid": "1500.00",
    "critical_illness_paid": "333.33", "base": "3166.67", "deductible_applied": "200.00", "ratio": "0.65",
    "amount_before_caps": "1928.34", "assistance": "1928.34", "breakdown": {
        "year": "2026", "category": "low_income", "policy_id": "yangpu-310110", "policy_version": "1",
        "base": "3166.67", "deductible": "1000.00", "deductible_used_before": "800.00", "ded_left": "200.00",
        "ded_applied": "200.00", "ratio": "0.65", "amount_before_caps": "1928.34", "per_settlement_cap": "",
        "amount_after_settlement_cap": "1928.34", "cap": "40000.00", "committed_before": "0.00",
        "cap_left": "40000.00", "assistance": "1928.34"}}


def test_an_assistance_calculated_of_version_1_still_on_the_topic_is_read_as_version_2() -> None:
    wire = {"event_id": str(uuid.uuid4()), "event_type": "AssistanceCalculated", "schema_version": 1,
            "occurred_at": "2026-03-01T10:00:00Z", "producer": "calculation", "person_ref": PERSON,
            "data": V1_CALCULATED}
    jsonschema.validate(wire, committed_schema("AssistanceCalculated.v1"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wire, committed_schema("AssistanceCalculated"))
    read = Envelope.model_validate(wire).payload()
    assert isinstance(read, ev.AssistanceCalculated)
    assert (read.year, read.policy_version) == (2026, 1)
    assert read.figures.model_dump(mode="json") == {
        "policy_scope_amount": "5000.00", "basic_insurance_paid": "1500.00", "critical_illness_paid": "333.33",
        "base": "3166.67", "deductible": "1000.00", "deductible_used_before": "800.00", "deductible_left": "200.00",
        "deductible_applied": "200.00", "ratio": "0.65", "amount_before_caps": "1928.34",
        "per_settlement_cap": None, "amount_after_settlement_cap": "1928.34", "cap": "40000.00",
        "committed_before": "0.00", "cap_left": "40000.00", "assistance": "1928.34"}


@pytest.mark.parametrize(("event_type", "version"), [("AssistanceCalculated", 3), ("SettlementReceived", 2),
                                                     ("AssistanceCalculated", 0)])
def test_a_version_this_code_does_not_know_is_refused(event_type: str, version: int) -> None:
    wire = json.loads(Envelope.wrap(SAMPLES[0] if event_type == "SettlementReceived" else SAMPLES[3],
                                    person_ref=PERSON, producer="test").to_bytes())
    wire["schema_version"] = version
    with pytest.raises(ValueError):
        Envelope.model_validate(wire).payload()


def test_every_event_is_sent_in_its_current_version() -> None:
    for sample in SAMPLES:
        assert Envelope.wrap(sample, person_ref=PERSON, producer="test").schema_version == type(sample).schema_version
    assert ev.AssistanceCalculated.schema_version == 2


def test_an_eligibility_decision_of_version_1_reads_as_one_that_does_not_say_its_lookback() -> None:
    v1 = {"settlement": SETTLEMENT.model_dump(mode="json"), "eligible": True, "reason": "eligible",
          "category": "subsistence", "district_code": "310110", "subdistrict_code": "310110001", "rescreened": False}
    wire = {"event_id": str(uuid.uuid4()), "event_type": "EligibilityDecided", "schema_version": 1,
            "occurred_at": "2026-03-01T10:00:00Z", "producer": "eligibility", "person_ref": PERSON, "data": v1}
    jsonschema.validate(wire, committed_schema("EligibilityDecided.v1"))
    read = Envelope.model_validate(wire).payload()
    assert isinstance(read, ev.EligibilityDecided) and read.eligible and read.settlement == SETTLEMENT
    assert (read.consent_lookback, read.lookback_policy_id, read.lookback_policy_version) == (None, None, None)


def _decoded_in_two_steps(raw: bytes) -> tuple[Envelope, ev.EventData]:
    envelope = Envelope.from_bytes(raw)
    return envelope, envelope.payload()


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: type(s).__name__)
def test_the_one_step_decode_reads_what_the_two_steps_read(sample: ev.EventData) -> None:
    """The consumer's `decode` (one validation) gives the envelope and payload `from_bytes` and `payload` give."""
    raw = Envelope.wrap(sample, person_ref=PERSON, producer="test").to_bytes()
    envelope, data = Envelope.decode(raw)
    assert (envelope, data) == _decoded_in_two_steps(raw) and data == sample and type(data) is type(sample)
    assert envelope.data == json.loads(raw)["data"] and envelope.to_bytes() == raw
    assert envelope.occurred_at.utcoffset() is not None
    assert envelope.model_dump() == Envelope.from_bytes(raw).model_dump()


@pytest.mark.parametrize(("event_type", "v1"), [
    ("AssistanceCalculated", V1_CALCULATED),
    ("EligibilityDecided", {"settlement": SETTLEMENT.model_dump(mode="json"), "eligible": False,
                            "reason": "not_registered"}),
])
def test_the_one_step_decode_upcasts_an_earlier_version(event_type: str, v1: dict) -> None:  # type: ignore[type-arg]
    raw = orjson.dumps({"event_id": str(uuid.uuid4()), "event_type": event_type, "schema_version": 1,
                        "occurred_at": "2026-03-01T10:00:00Z", "producer": "test", "person_ref": PERSON, "data": v1})
    envelope, data = Envelope.decode(raw)
    assert (envelope, data) == _decoded_in_two_steps(raw) and envelope.schema_version == 1
    assert type(data).schema_version == 2


def _wire(**changes: object) -> dict:  # type: ignore[type-arg]
    wire = json.loads(Envelope.wrap(SETTLEMENT, person_ref=PERSON, producer="test").to_bytes())
    wire.update(changes)
    return wire


@pytest.mark.parametrize(("wire", "error"), [
    (_wire(event_type="SettlementTeleported"), UnknownEventType),
    (_wire(schema_version=2), UnknownSchemaVersion),
    (_wire(schema_version=0), ValidationError),
    (_wire(person_ref="not-a-ref"), ValidationError),
    (_wire(occurred_at="yesterday"), ValidationError),
    (_wire(extra="field"), ValidationError),
    (_wire(data={**_wire()["data"], "total_amount": 12000.0}), ValidationError),
    (_wire(data={**_wire()["data"], "national_id": "110101199003074578"}), ValidationError),
    ([1, 2], ValidationError),
])
def test_the_one_step_decode_refuses_what_the_two_steps_refuse_and_says_why(wire: object, error: type) -> None:
    raw = orjson.dumps(wire)
    with pytest.raises(error) as one_step:
        Envelope.decode(raw)
    with pytest.raises(error) as two_steps:
        _decoded_in_two_steps(raw)
    assert str(one_step.value) == str(two_steps.value)


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b'{"event_id": 1e999999}'])
def test_the_one_step_decode_refuses_bytes_that_are_not_json(raw: bytes) -> None:
    with pytest.raises(ValueError):
        Envelope.decode(raw)


def test_a_defaulted_schema_version_reads_as_version_1() -> None:
    wire = _wire()
    del wire["schema_version"]
    envelope, data = Envelope.decode(orjson.dumps(wire))
    assert envelope.schema_version == 1 and data == SETTLEMENT


def test_an_envelope_is_wrapped_only_under_a_pseudonym() -> None:
    with pytest.raises(ValueError, match="person_ref"):
        Envelope.wrap(SETTLEMENT, person_ref="310110198001011236", producer="test")
    wrapped = Envelope.wrap(SETTLEMENT, person_ref=PERSON, producer="test")
    assert Envelope.model_validate(wrapped.model_dump()) == wrapped
    assert wrapped.model_fields_set == set(Envelope.model_fields)
