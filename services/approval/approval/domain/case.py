"""The approval state machine (DESIGN.md section 6). Pure: the caller persists state and audit.

awaiting_subdistrict --clerk approve--> awaiting_district --reviewer approve--> approved
either reviewer can reject (with a reason); the district reviewer can send back to the clerk.
A skip-district threshold (off by default) lets a clerk's approval of a small amount be final.
The system cancels a case when the hospital reverses the settlement, and (benchmarks only) approves.
When the money had already been paid, the reversal cannot cancel it: the case becomes reversed_after_payment,
and a recovery (calculation's) is open for the district. A reversal can also overtake the payment (cancelled
while the bank was already settling it): the recovery then moves the cancelled case on the same way.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class CaseState(StrEnum):
    AWAITING_SUBDISTRICT = "awaiting_subdistrict"
    AWAITING_DISTRICT = "awaiting_district"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    REVERSED_AFTER_PAYMENT = "reversed_after_payment"  # paid, then reversed by the hospital: a recovery is open


class Action(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    SEND_BACK = "send_back"
    CANCEL = "cancel"
    OPEN_RECOVERY = "open_recovery"


class Role(StrEnum):
    CLERK = "clerk"
    DISTRICT_REVIEWER = "district_reviewer"
    SYSTEM = "system"


class RejectReason(StrEnum):
    NOT_MEDICALLY_NECESSARY = "not_medically_necessary"
    DUPLICATE_CLAIM = "duplicate_claim"
    DATA_ERROR = "data_error"
    NOT_ELIGIBLE = "not_eligible"
    OTHER = "other"


class IllegalTransition(ValueError):
    def __init__(self, state: CaseState, action: Action, role: Role) -> None:
        super().__init__(f"{role.value} cannot {action.value} a case that is {state.value}")
        self.state, self.action, self.role = state, action, role


class MissingReason(ValueError):
    """A rejection needs a reason code (and a comment for `other`); a send-back needs a comment."""


_S, _A, _R = CaseState, Action, Role
_TABLE: dict[tuple[CaseState, Action, Role], CaseState] = {
    (_S.AWAITING_SUBDISTRICT, _A.APPROVE, _R.CLERK): _S.AWAITING_DISTRICT,
    (_S.AWAITING_SUBDISTRICT, _A.REJECT, _R.CLERK): _S.REJECTED,
    (_S.AWAITING_DISTRICT, _A.APPROVE, _R.DISTRICT_REVIEWER): _S.APPROVED,
    (_S.AWAITING_DISTRICT, _A.REJECT, _R.DISTRICT_REVIEWER): _S.REJECTED,
    (_S.AWAITING_DISTRICT, _A.SEND_BACK, _R.DISTRICT_REVIEWER): _S.AWAITING_SUBDISTRICT,
    (_S.AWAITING_SUBDISTRICT, _A.APPROVE, _R.SYSTEM): _S.APPROVED,
    (_S.AWAITING_DISTRICT, _A.APPROVE, _R.SYSTEM): _S.APPROVED,
    (_S.AWAITING_SUBDISTRICT, _A.CANCEL, _R.SYSTEM): _S.CANCELLED,
    (_S.AWAITING_DISTRICT, _A.CANCEL, _R.SYSTEM): _S.CANCELLED,
    (_S.APPROVED, _A.CANCEL, _R.SYSTEM): _S.CANCELLED,
    (_S.APPROVED, _A.OPEN_RECOVERY, _R.SYSTEM): _S.REVERSED_AFTER_PAYMENT,
    (_S.CANCELLED, _A.OPEN_RECOVERY, _R.SYSTEM): _S.REVERSED_AFTER_PAYMENT,
}


def is_final(state: CaseState) -> bool:
    return state in (CaseState.APPROVED, CaseState.REJECTED, CaseState.CANCELLED, CaseState.REVERSED_AFTER_PAYMENT)


def transition(state: CaseState, action: Action, role: Role, *, amount: Decimal,
               skip_district_threshold: Decimal | None = None, reason: RejectReason | None = None,
               comment: str | None = None) -> CaseState:
    """The state after `role` takes `action`; IllegalTransition or MissingReason otherwise."""
    new = _TABLE.get((state, action, role))
    if new is None:
        raise IllegalTransition(state, action, role)
    if action is Action.REJECT and (reason is None or (reason is RejectReason.OTHER and not (comment or "").strip())):
        raise MissingReason("a rejection needs a reason code, and a comment when the reason is 'other'")
    if action is Action.SEND_BACK and not (comment or "").strip():
        raise MissingReason("sending back needs a comment saying why")
    if (new is CaseState.AWAITING_DISTRICT and skip_district_threshold is not None
            and amount <= skip_district_threshold):
        return CaseState.APPROVED
    return new


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    role: Role
    at: datetime
    action: Action
    from_state: CaseState
    to_state: CaseState
    reason: RejectReason | None = None
    comment: str | None = None


@dataclass
class Case:
    """A case in memory: `apply` moves it and returns the audit entry to append."""

    state: CaseState
    amount: Decimal

    def apply(self, action: Action, actor: str, role: Role, at: datetime, *,
              skip_district_threshold: Decimal | None = None, reason: RejectReason | None = None,
              comment: str | None = None) -> AuditEntry:
        new = transition(self.state, action, role, amount=self.amount,
                         skip_district_threshold=skip_district_threshold, reason=reason, comment=comment)
        entry = AuditEntry(actor, role, at, action, self.state, new, reason, comment)
        self.state = new
        return entry
