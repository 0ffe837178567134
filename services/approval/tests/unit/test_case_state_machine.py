"""Every (state, action, role) combination of the approval state machine, against a hand-written table."""

import itertools
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from approval.domain.case import (
    Action,
    Case,
    CaseState,
    IllegalTransition,
    MissingReason,
    RejectReason,
    is_final,
    transition,
)

from shared.security.roles import Role

S, A, R = CaseState, Action, Role
ALLOWED = {
    (S.AWAITING_SUBDISTRICT, A.APPROVE, R.clerk): S.AWAITING_DISTRICT,
    (S.AWAITING_SUBDISTRICT, A.REJECT, R.clerk): S.REJECTED,
    (S.AWAITING_DISTRICT, A.APPROVE, R.district_reviewer): S.APPROVED,
    (S.AWAITING_DISTRICT, A.REJECT, R.district_reviewer): S.REJECTED,
    (S.AWAITING_DISTRICT, A.SEND_BACK, R.district_reviewer): S.AWAITING_SUBDISTRICT,
    (S.AWAITING_SUBDISTRICT, A.APPROVE, R.system): S.APPROVED,
    (S.AWAITING_DISTRICT, A.APPROVE, R.system): S.APPROVED,
    (S.AWAITING_SUBDISTRICT, A.CANCEL, R.system): S.CANCELLED,
    (S.AWAITING_DISTRICT, A.CANCEL, R.system): S.CANCELLED,
    (S.APPROVED, A.CANCEL, R.system): S.CANCELLED,
    (S.APPROVED, A.OPEN_RECOVERY, R.system): S.REVERSED_AFTER_PAYMENT,  # paid, then reversed
    (S.CANCELLED, A.OPEN_RECOVERY, R.system): S.REVERSED_AFTER_PAYMENT,  # the reversal overtook the payment
}
EVERY = list(itertools.product(CaseState, Action, Role))


@pytest.mark.parametrize(("state", "action", "role"), EVERY, ids=lambda v: v.value)
def test_every_combination(state: CaseState, action: Action, role: Role) -> None:
    kwargs = {"amount": Decimal("100.00"), "reason": RejectReason.DATA_ERROR, "comment": "checked"}
    expected = ALLOWED.get((state, action, role))
    if expected is None:
        with pytest.raises(IllegalTransition):
            transition(state, action, role, **kwargs)  # type: ignore[arg-type]
    else:
        assert transition(state, action, role, **kwargs) is expected  # type: ignore[arg-type]


def test_the_table_covers_every_combination() -> None:
    assert len(EVERY) == 6 * 5 * len(Role) and len(ALLOWED) == 12  # the roles with no move are refused too


@pytest.mark.parametrize(("threshold", "amount", "expected"), [
    (None, "1.00", S.AWAITING_DISTRICT),
    (Decimal("500.00"), "499.99", S.APPROVED),
    (Decimal("500.00"), "500.00", S.APPROVED),
    (Decimal("500.00"), "500.01", S.AWAITING_DISTRICT),
])
def test_skip_district_threshold(threshold: Decimal | None, amount: str, expected: CaseState) -> None:
    assert transition(S.AWAITING_SUBDISTRICT, A.APPROVE, R.clerk, amount=Decimal(amount),
                      skip_district_threshold=threshold) is expected


@pytest.mark.parametrize(("action", "role", "state", "reason", "comment"), [
    (A.REJECT, R.clerk, S.AWAITING_SUBDISTRICT, None, "no reason code"),
    (A.REJECT, R.clerk, S.AWAITING_SUBDISTRICT, RejectReason.OTHER, None),
    (A.REJECT, R.district_reviewer, S.AWAITING_DISTRICT, RejectReason.OTHER, "   "),
    (A.SEND_BACK, R.district_reviewer, S.AWAITING_DISTRICT, None, None),
])
def test_reasons_are_required(action: Action, role: Role, state: CaseState, reason: RejectReason | None,
                              comment: str | None) -> None:
    with pytest.raises(MissingReason):
        transition(state, action, role, amount=Decimal("1.00"), reason=reason, comment=comment)


def test_case_apply_returns_the_audit_entry() -> None:
    at = datetime(2026, 5, 1, tzinfo=UTC)
    case = Case(id=uuid.uuid4(), calculation_id=uuid.uuid4(), settlement_id=uuid.uuid4(), person_ref="p" * 64,
                hospital_id="H001", district_code="310110", subdistrict_code="310110001", category="subsistence",
                discharge_date=date(2026, 4, 1), amount=Decimal("80.00"), state=S.AWAITING_SUBDISTRICT, calculation={})
    first = case.apply(A.APPROVE, "clerk-1", R.clerk, at)
    back = case.apply(A.SEND_BACK, "rev-1", R.district_reviewer, at, comment="check the invoice")
    assert (first.from_state, first.to_state, back.to_state, case.state) == (
        S.AWAITING_SUBDISTRICT, S.AWAITING_DISTRICT, S.AWAITING_SUBDISTRICT, S.AWAITING_SUBDISTRICT)
    assert [is_final(s) for s in CaseState] == [False, False, True, True, True, True]
