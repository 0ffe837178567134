"""Which events are moments the person is told about, and what their message is built from, table-driven."""

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from notification.domain.moments import Place, moment_of, notice_for
from notification.domain.templates import Moment

from shared.contracts import events as ev
from shared.contracts.envelope import Envelope

SID, AMOUNT = uuid.uuid4(), Decimal("88.00")
IDS = {"case_id": uuid.uuid4(), "calculation_id": uuid.uuid4(), "settlement_id": SID}
AREA = {"district_code": "310110", "subdistrict_code": "310110001"}


def decided(decision: str, reason: str | None = None) -> ev.CaseDecided:
    return ev.CaseDecided(**IDS, decision=decision, reason_code=reason, amount=AMOUNT, **AREA,
                          decided_at=datetime.now(UTC))


def transfer(status: str, reason: str | None = None) -> ev.TransferSettled:
    return ev.TransferSettled(payment_id=uuid.uuid4(), **IDS, status=status, reason=reason, amount=AMOUNT)


def calculated(assistance: str) -> ev.AssistanceCalculated:
    zero, amount = Decimal("0.00"), Decimal(assistance)
    figures = ev.AssistanceFigures(
        policy_scope_amount=amount, basic_insurance_paid=zero, critical_illness_paid=zero, base=amount,
        deductible=zero, deductible_used_before=zero, deductible_left=zero, deductible_applied=zero,
        ratio=Decimal("1"), amount_before_caps=amount, per_settlement_cap=None, amount_after_settlement_cap=amount,
        cap=Decimal("100000.00"), committed_before=zero, cap_left=Decimal("100000.00"), assistance=amount)
    return ev.AssistanceCalculated(calculation_id=uuid.uuid4(), settlement_id=SID, hospital_id="H002",
                                   category="subsistence", **AREA, visit_type="inpatient", hospital_level=2,
                                   discharge_date=date(2026, 3, 3), year=2026, policy_id="p", policy_version=1,
                                   figures=figures)


@pytest.mark.parametrize(("data", "moment", "reason", "hospital"), [
    (calculated("88.00"), Moment.CALCULATED, None, "H002"),  # the calculation says where itself
    (calculated("0.00"), None, None, None),  # nothing to pay: nothing to tell
    (decided("approved"), Moment.APPROVED, None, "H001"),
    (decided("rejected", "not_resident"), Moment.REJECTED, "not_resident", "H001"),
    (decided("cancelled"), None, None, None),
    (transfer("settled"), Moment.PAID, None, "H001"),
    (transfer("failed", "account_closed"), Moment.PAYMENT_FAILED, "account_closed", "H001"),
    (transfer("cancelled"), None, None, None),
    (ev.RecoveryOpened(recovery_id=uuid.uuid4(), calculation_id=uuid.uuid4(), settlement_id=SID,
                       district_code="310110", amount=AMOUNT, opened_at=datetime.now(UTC)),
     Moment.RECOVERY, None, "H001"),
    (ev.ContactUpdated(contact_version=1, phone_ciphertext="c", phone_masked="138****0000", sms_opt_out=False),
     None, None, None),
])
def test_the_moments_that_matter_and_nothing_else(data: ev.EventData, moment: Moment | None, reason: str | None,
                                                  hospital: str | None) -> None:
    envelope = Envelope.wrap(data, person_ref="a" * 64, producer="test")
    notice = notice_for(envelope, data, Place("H001", date(2026, 3, 2)), "****1234", {})
    assert moment_of(data) == moment, "which events call for a message is known from the event alone"
    if moment is None:
        assert notice is None
        return
    assert notice is not None and (notice.moment, notice.facts.reason, notice.facts.hospital) == (
        moment, reason, hospital)
    assert notice.message_id == notice_for(envelope, data, Place(), None, {}).message_id  # (event, person): one id
    assert notice.facts.account == ("****1234" if moment in (Moment.PAID, Moment.PAYMENT_FAILED) else None)
