"""CaseDecided written as JSON from the case: the same keys, order and values as the model's dump."""

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from approval.domain.case import Case, CaseState, Decided
from approval.service_layer.unit_of_work import _DECISIONS, _envelope, decided_json

from shared.contracts import events as ev


def case(amount: Decimal) -> Case:
    return Case(id=uuid.uuid4(), calculation_id=uuid.uuid4(), settlement_id=uuid.uuid4(), person_ref="ef" * 32,
                hospital_id="H001", district_code="310110", subdistrict_code="310110001", category="subsistence",
                discharge_date=date(2026, 3, 1), amount=amount, state=CaseState.APPROVED, calculation={})


def model_dump(c: Case, d: Decided) -> dict[str, object]:
    return ev.CaseDecided(case_id=c.id, calculation_id=c.calculation_id, settlement_id=c.settlement_id,
                          decision=_DECISIONS[d.state], reason_code=d.reason, amount=c.amount,
                          district_code=c.district_code, subdistrict_code=c.subdistrict_code,
                          decided_at=d.at).model_dump(mode="json")


@pytest.mark.parametrize("state, reason", [(CaseState.APPROVED, None), (CaseState.REJECTED, "data_error"),
                                           (CaseState.CANCELLED, "settlement_reversed")])
@pytest.mark.parametrize("amount", ["120.50", "0.01", "7", "3.145", "60000.00"])
@pytest.mark.parametrize("at", [datetime.now(UTC), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                                datetime(2026, 1, 2, 3, 4, 5, 120, tzinfo=UTC)])
def test_a_decision_is_written_as_its_model_dumps_it(state: CaseState, reason: str | None, amount: str,
                                                     at: datetime) -> None:
    c, d = case(Decimal(amount)), Decided(state, reason, at)
    written, dumped = decided_json(c, d), model_dump(c, d)
    assert written is not None and list(written.items()) == list(dumped.items())  # "3.145" rounds as Money does
    assert _envelope(c, d).data == dumped


def test_a_time_not_in_utc_is_written_by_the_model() -> None:
    c, d = case(Decimal("10.00")), Decided(CaseState.APPROVED, None, datetime(2026, 1, 2, 11, 4, 5,
                                                                               tzinfo=timezone(timedelta(hours=8))))
    assert decided_json(c, d) is None
    assert _envelope(c, d).data == model_dump(c, d)
