"""The approval state machine (DESIGN.md section 6) and the case aggregate, the only code that moves a case.

awaiting_subdistrict --clerk approve--> awaiting_district --reviewer approve--> approved
either reviewer can reject (with a reason); the district reviewer can send back to the clerk.
A skip-district threshold (off by default) lets a clerk's approval of a small amount be final.
The system cancels a case when the hospital reverses the settlement, and (benchmarks only) approves.
When the money had already been paid, the reversal cannot cancel it: the case becomes reversed_after_payment,
and a recovery (calculation's) is open for the district. A reversal can also overtake the payment (cancelled
while the bank was already settling it): the recovery then moves the cancelled case on the same way.

Each move appends an audit entry and, when it decides the case, a `Decided` event; the repository persists
both, the service layer announces the events. Pure: no framework, no database.
"""

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from shared.errors import Conflict, Forbidden, Invalid
from shared.security.roles import Role


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


OPEN: Literal["open"] = "open"
"""The audit trail's first action: the system opened the case (not an action anyone takes on it)."""


SYSTEM = "system"  # the actor (and role) of what the system does
REVERSED = "settlement_reversed"  # the reason the system gives when a hospital's reversal moves a case


class RejectReason(StrEnum):
    NOT_MEDICALLY_NECESSARY = "not_medically_necessary"
    DUPLICATE_CLAIM = "duplicate_claim"
    DATA_ERROR = "data_error"
    NOT_ELIGIBLE = "not_eligible"
    OTHER = "other"


class IllegalTransition(Conflict):
    def __init__(self, state: CaseState, action: Action, party: Role) -> None:
        super().__init__("illegal_transition", f"cannot {action.value} a case that is {state.value}", field="state")
        self.state, self.action, self.party = state, action, party


class MissingReason(Invalid):
    """A rejection needs a reason code (and a comment for `other`); a send-back needs a comment."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__("reason_required", message, field=field)


@dataclass(frozen=True)
class ApprovalRules:
    """How this deployment approves: the optional skip-district threshold and the bench-only auto-approval."""

    skip_district_threshold: Decimal | None = None
    auto_approve: bool = False


_S, _A, _P = CaseState, Action, Role
_TABLE: dict[tuple[CaseState, Action, Role], CaseState] = {
    (_S.AWAITING_SUBDISTRICT, _A.APPROVE, _P.clerk): _S.AWAITING_DISTRICT,
    (_S.AWAITING_SUBDISTRICT, _A.REJECT, _P.clerk): _S.REJECTED,
    (_S.AWAITING_DISTRICT, _A.APPROVE, _P.district_reviewer): _S.APPROVED,
    (_S.AWAITING_DISTRICT, _A.REJECT, _P.district_reviewer): _S.REJECTED,
    (_S.AWAITING_DISTRICT, _A.SEND_BACK, _P.district_reviewer): _S.AWAITING_SUBDISTRICT,
    (_S.AWAITING_SUBDISTRICT, _A.APPROVE, _P.system): _S.APPROVED,
    (_S.AWAITING_DISTRICT, _A.APPROVE, _P.system): _S.APPROVED,
    (_S.AWAITING_SUBDISTRICT, _A.CANCEL, _P.system): _S.CANCELLED,
    (_S.AWAITING_DISTRICT, _A.CANCEL, _P.system): _S.CANCELLED,
    (_S.APPROVED, _A.CANCEL, _P.system): _S.CANCELLED,
    (_S.APPROVED, _A.OPEN_RECOVERY, _P.system): _S.REVERSED_AFTER_PAYMENT,
    (_S.CANCELLED, _A.OPEN_RECOVERY, _P.system): _S.REVERSED_AFTER_PAYMENT,
}
_DECISIONS = (CaseState.APPROVED, CaseState.REJECTED, CaseState.CANCELLED)  # what disbursement acts on


def is_final(state: CaseState) -> bool:
    return state in (CaseState.APPROVED, CaseState.REJECTED, CaseState.CANCELLED, CaseState.REVERSED_AFTER_PAYMENT)


def transition(state: CaseState, action: Action, party: Role, *, amount: Decimal,
               skip_district_threshold: Decimal | None = None, reason: RejectReason | None = None,
               comment: str | None = None) -> CaseState:
    """The state after `party` takes `action`; IllegalTransition or MissingReason otherwise."""
    new = _TABLE.get((state, action, party))
    if new is None:
        raise IllegalTransition(state, action, party)
    if action is Action.REJECT and (reason is None or (reason is RejectReason.OTHER and not (comment or "").strip())):
        raise MissingReason("a rejection needs a reason code, and a comment when the reason is 'other'", "reason")
    if action is Action.SEND_BACK and not (comment or "").strip():
        raise MissingReason("sending back needs a comment saying why", "comment")
    if (new is CaseState.AWAITING_DISTRICT and skip_district_threshold is not None
            and amount <= skip_district_threshold):
        return CaseState.APPROVED
    return new


@dataclass(frozen=True)
class AuditEntry:
    """One line of the case's append-only trail (who, as what, when, from which state to which)."""

    actor: str
    role: Role
    at: datetime
    action: Action | Literal["open"]
    from_state: CaseState | None
    to_state: CaseState
    reason: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class Decided:
    """The case was decided (approved, rejected or cancelled): disbursement and calculation are told."""

    state: CaseState
    reason: str | None
    at: datetime


@dataclass(eq=False)
class Case:
    """One calculation's case. Its methods are the only way its state changes; each appends to `audit` (the
    entries not yet stored) and, when the case is decided, to `events` (not yet announced)."""

    id: UUID
    calculation_id: UUID
    settlement_id: UUID
    person_ref: str
    hospital_id: str
    district_code: str
    subdistrict_code: str
    category: str
    discharge_date: date
    amount: Decimal
    state: CaseState
    calculation: dict[str, Any]
    """The AssistanceCalculated payload the case was opened from (every figure, for the case view)."""
    traceparent: str | None = None
    recovery_id: UUID | None = None
    recovery_amount: Decimal | None = None
    recovery_opened_at: datetime | None = None
    payment_status: str | None = None
    payment_failures: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    approvals: tuple[tuple[str, Role], ...] = ()
    """(actor, party) of every earlier approval, for the four-eyes rule; loaded with a case staff act on."""
    audit: list[AuditEntry] = field(default_factory=list)
    events: list[Decided] = field(default_factory=list)
    changed: bool = False

    @classmethod
    def open(cls, rules: ApprovalRules, at: datetime, *, id: UUID, calculation_id: UUID, settlement_id: UUID,
             person_ref: str, hospital_id: str, district_code: str, subdistrict_code: str, category: str,
             discharge_date: date, amount: Decimal, calculation: dict[str, Any], traceparent: str | None = None
             ) -> "Case":
        """A new case in the clerk's queue (approved at once when the benchmark's auto-approval is on)."""
        case = cls(id=id, calculation_id=calculation_id, settlement_id=settlement_id, person_ref=person_ref,
                   hospital_id=hospital_id, district_code=district_code, subdistrict_code=subdistrict_code,
                   category=category, discharge_date=discharge_date, amount=amount, calculation=calculation,
                   traceparent=traceparent, state=CaseState.AWAITING_SUBDISTRICT, created_at=at, updated_at=at)
        case.audit.append(AuditEntry(SYSTEM, Role.system, at, OPEN, None, CaseState.AWAITING_SUBDISTRICT))
        if rules.auto_approve:
            case.apply(Action.APPROVE, SYSTEM, Role.system, at, comment="bench auto-approval")
        return case

    def apply(self, action: Action, actor: str, party: Role, at: datetime, *, rules: ApprovalRules | None = None,
              reason: str | None = None, comment: str | None = None) -> AuditEntry:
        """Take `action` as `actor` (a staff id, or the system); the audit entry appended.

        Four eyes: whoever approved the case at one level never approves it at another. Then the state machine:
        IllegalTransition, MissingReason, or the new state.
        """
        if action is Action.APPROVE and party is not Role.system:
            earlier = next((p for a, p in self.approvals if a == actor and p is not party), None)
            if earlier is not None:
                raise Forbidden("four_eyes_required", f"you approved this case as {earlier.value}; another person "
                                "must approve it at this level", field="case_id")
        rules = rules or ApprovalRules()
        old = self.state
        new = transition(old, action, party, amount=self.amount, skip_district_threshold=rules.skip_district_threshold,
                         reason=RejectReason(reason) if action is Action.REJECT and reason else None, comment=comment)
        entry = AuditEntry(actor, party, at, action, old, new, reason, comment)
        self.state, self.updated_at, self.changed = new, at, True
        self.audit.append(entry)
        if action is Action.APPROVE:
            self.approvals += ((actor, party),)
        if new in _DECISIONS and new is not old:
            self.events.append(Decided(new, reason, at))
        return entry

    def cancel(self, at: datetime) -> bool:
        """The hospital reversed the settlement before payment: cancel the case, even an approved one
        (disbursement stops it if not yet sent). False when the case was already done with."""
        if is_final(self.state) and self.state is not CaseState.APPROVED:
            return False
        self.apply(Action.CANCEL, SYSTEM, Role.system, at, reason=REVERSED, comment="reversed by the hospital")
        return True

    def record_recovery(self, recovery_id: UUID, amount: Decimal, opened_at: datetime, at: datetime) -> None:
        """The money was paid and the hospital reversed the settlement: the case shows it, with the recovery.

        The recovery is recorded even when the case cannot move (IllegalTransition: never paid as far as it
        knows); a recovery announced again changes nothing more."""
        self.recovery_id, self.recovery_amount, self.recovery_opened_at = recovery_id, amount, opened_at
        self.changed = True
        if self.state is CaseState.REVERSED_AFTER_PAYMENT:
            return
        self.apply(Action.OPEN_RECOVERY, SYSTEM, Role.system, at, reason=REVERSED,
                   comment=f"reversed by the hospital after payment; {amount:.2f} to recover")
