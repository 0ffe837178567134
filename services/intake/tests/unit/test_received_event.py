"""SettlementReceived is made from the submission's canonical body, not built as a second pydantic model: it must
be exactly what the typed event would dump (the same keys, order and values, so the same bytes on the wire), and
the fingerprint of a body must not change (stored settlements are compared with it when a batch is re-sent)."""

import uuid
from decimal import Decimal
from typing import Any

import pytest
from intake.domain.settlement import Announced, Sealed, Settlement
from intake.domain.submission import SettlementIn, fingerprint, two_places
from intake.service_layer.accept import _envelope

from shared.contracts.envelope import Envelope
from shared.contracts.events import SettlementReceived

BODY = {"hospital_settlement_id": "S-2026-000123", "hospital_level": 3, "visit_type": "inpatient",
        "admission_date": "2026-03-02", "discharge_date": "2026-03-09",
        "patient": {"national_id": "310110198001011236", "name": "王芳"},
        "total_amount": "12000", "policy_scope_amount": "10000.5", "basic_insurance_paid": "6000.00",
        "critical_illness_paid": "1500.05"}
PERSON_REF = "a" * 64


@pytest.mark.parametrize("changes", [
    {},
    {"hospital_level": 1, "visit_type": "outpatient", "total_amount": "0", "policy_scope_amount": "0.0",
     "basic_insurance_paid": "0.00", "critical_illness_paid": "0"},
    {"hospital_level": 2, "visit_type": "outpatient_chronic", "total_amount": "9999999.99",
     "policy_scope_amount": "1.1", "basic_insurance_paid": " 7.25 ", "critical_illness_paid": "0.01"},
    {"hospital_settlement_id": "a.b_c-9", "admission_date": "2024-02-29", "discharge_date": "2024-02-29",
     "total_amount": "100.1", "policy_scope_amount": "100.10", "basic_insurance_paid": "50",
     "critical_illness_paid": "50.1"},
])
def test_the_received_payload_is_what_the_typed_event_dumps(changes: dict[str, Any]) -> None:
    item = SettlementIn.model_validate({**BODY, **changes})
    body = item.canonical()
    sid = uuid.uuid4()
    settlement = Settlement.receive(sid, "H002", item, body, fingerprint(body), PERSON_REF, Sealed("n", "m"))
    [event] = settlement.events
    assert isinstance(event, Announced)
    typed = SettlementReceived(
        settlement_id=sid, hospital_id="H002", hospital_settlement_id=item.hospital_settlement_id,
        hospital_level=item.hospital_level, visit_type=item.visit_type, admission_date=item.admission_date,
        discharge_date=item.discharge_date, total_amount=Decimal(item.total_amount),
        policy_scope_amount=Decimal(item.policy_scope_amount), basic_insurance_paid=Decimal(item.basic_insurance_paid),
        critical_illness_paid=Decimal(item.critical_illness_paid))
    assert list(event.data.items()) == list(typed.model_dump(mode="json").items())
    envelope = _envelope(event, PERSON_REF)
    assert envelope.payload() == typed
    expected = Envelope.wrap(typed, person_ref=PERSON_REF, producer="intake", event_id=envelope.event_id)
    assert envelope.to_bytes() == expected.model_copy(update={"occurred_at": envelope.occurred_at}).to_bytes()
    assert "310110198001011236" not in envelope.to_bytes().decode() and "王芳" not in envelope.to_bytes().decode()


def test_a_body_keeps_the_fingerprint_it_was_stored_with() -> None:
    # Computed by the code before the canonical body was shared with the event (4a32974): a re-sent batch of
    # settlements stored then must still be a retry, not a conflict.
    item = SettlementIn.model_validate(BODY)
    assert fingerprint(item.canonical()) == "a47ac6ba678c6c1575ddc1a61422bc41bead955cfe09570d229e7abf8d9e7b84"
    assert fingerprint(SettlementIn.model_validate({**BODY, "total_amount": "12000.00"}).canonical()) == \
        fingerprint(item.canonical())
    assert fingerprint(SettlementIn.model_validate({**BODY, "total_amount": "12000.01"}).canonical()) != \
        fingerprint(item.canonical())


def _every_amount() -> list[str]:
    """Amounts the submission's pattern admits, leading zeros and every number of places included."""
    wholes = ["0", "00", "1", "01", "10", "0100", "00000000", "12345678", "99999999", "00000001"]
    return [w + p for w in wholes for p in ("", ".0", ".00", ".5", ".05", ".50", ".9", ".99")]


def test_amounts_get_two_places_as_decimal_formats_them() -> None:
    for amount in _every_amount():
        assert two_places(amount) == f"{Decimal(amount):.2f}", amount


@pytest.mark.parametrize("amount", ["0012", "0.5", "00000000.00", "7"])
def test_the_canonical_body_is_the_models_json_dump_with_two_place_amounts(amount: str) -> None:
    item = SettlementIn.model_validate({**BODY, "total_amount": "9999999.99", "policy_scope_amount": amount})
    dumped = item.model_dump(mode="json")
    for key in ("total_amount", "policy_scope_amount", "basic_insurance_paid", "critical_illness_paid"):
        dumped[key] = f"{Decimal(dumped[key]):.2f}"
    assert list(item.canonical().items()) == list(dumped.items())
