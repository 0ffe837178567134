"""A calculation: one eligible settlement's assistance, from the money rule to paid, rejected or reversed.

The aggregate is the only code that changes a calculation's state and raises its events (AssistanceCalculated,
AssistanceReversed, RecoveryOpened); the service layer loads it, calls it and saves what it changed.

    no_policy --calculate--> calculated --approve--> approved --settle--> paid
        |                        |                      |                  |
        +--close (rejected, cancelled)------------------+                  |
        +--reverse-------------------------------------------------------->+--reverse--> reversed

Closing or reversing before payment gives the deductible and assistance back to the person's ledger, once;
reversing after payment (or a payment that lands after the reversal) opens one recovery for the district.
"""

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from calculation.domain import money_rule
from calculation.domain.money_rule import AssistanceCalculation, LedgerPosition, SettlementAmounts
from calculation.domain.policy import Policy, select_policy
from shared.contracts import events as ev
from shared.contracts.types import Category
from shared.ids import new_id
from shared.money import ZERO


class CalculationStatus(StrEnum):
    NO_POLICY = "no_policy"  # no published policy covers the region, date and category (yet)
    CALCULATED = "calculated"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    PAID = "paid"
    REVERSED = "reversed"


LedgerKey = tuple[str, int]  # (person_ref, year)


class Ledgers:
    """The (person, year) ledger positions a change works on; a position nobody has used starts at zero."""

    def __init__(self, positions: Mapping[LedgerKey, LedgerPosition] | None = None) -> None:
        self._positions = dict(positions or {})
        self._changed: set[LedgerKey] = set()

    def get(self, person_ref: str, year: int) -> LedgerPosition:
        return self._positions.get((person_ref, year)) or LedgerPosition(year, ZERO, ZERO)

    def put(self, person_ref: str, position: LedgerPosition) -> None:
        self._positions[(person_ref, position.year)] = position
        self._changed.add((person_ref, position.year))

    @property
    def changed(self) -> dict[LedgerKey, LedgerPosition]:
        """The positions to write back."""
        return {key: self._positions[key] for key in sorted(self._changed)}


@dataclass(frozen=True)
class Assessment:
    """What a calculation was made from (the settlement as received) and, once calculated, the figures of the
    money rule and the policy version that gave them. Fixed once made; loaded only where a change needs it."""

    settlement: ev.SettlementReceived
    figures: ev.AssistanceFigures | None = None
    policy_id: str | None = None
    policy_version: int | None = None
    settlement_json: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    """The settlement in its JSON form (`model_dump(mode="json")`) when it is at hand: as it came off the wire."""


@dataclass(frozen=True)
class Recovery:
    """Money paid for a settlement the hospital reversed, for the district to recover."""

    recovery_id: uuid.UUID
    amount: Decimal
    opened_at: datetime


def amounts_of(s: ev.SettlementReceived) -> SettlementAmounts:
    """The settlement's amounts the money rule takes (its input)."""
    return SettlementAmounts(
        policy_scope_amount=s.policy_scope_amount, basic_insurance_paid=s.basic_insurance_paid,
        critical_illness_paid=s.critical_illness_paid, visit_type=s.visit_type.value,
        hospital_level=s.hospital_level, discharge_date=s.discharge_date,
    )


def figures_of(s: ev.SettlementReceived, result: AssistanceCalculation) -> ev.AssistanceFigures:
    """The figures as they travel and are shown: the settlement's inputs, then the rule's every step.

    Built without validating them again (`model_construct`): every value is already what validation would make
    of it: the inputs are the settlement's validated Money, the rule's figures come out of `to_money` (the two
    caps and the deductible are two-place texts of the policy), the ratio is the policy's. Validating them
    again rounded each of the 16 a second time (half the cost of a calculation's figures);
    `test_figures_are_what_validation_makes_of_them` holds the two to each other."""
    return ev.AssistanceFigures.model_construct(
        policy_scope_amount=s.policy_scope_amount, basic_insurance_paid=s.basic_insurance_paid,
        critical_illness_paid=s.critical_illness_paid, base=result.base, deductible=result.deductible,
        deductible_used_before=result.deductible_used_before, deductible_left=result.deductible_left,
        deductible_applied=result.deductible_applied, ratio=result.ratio,
        amount_before_caps=result.amount_before_caps, per_settlement_cap=result.per_settlement_cap,
        amount_after_settlement_cap=result.amount_after_settlement_cap, cap=result.cap,
        committed_before=result.committed_before, cap_left=result.cap_left, assistance=result.assistance,
    )


@dataclass(eq=False)
class Calculation:
    """One settlement's assistance and where it stands. `events` are raised and not yet published; `recovery`
    is the recovery this change opened; `assessment` is set when the change made or needs the figures."""

    calculation_id: uuid.UUID
    settlement_id: uuid.UUID
    person_ref: str
    year: int
    category: Category | None
    district_code: str
    subdistrict_code: str
    status: CalculationStatus
    deductible_applied: Decimal = ZERO
    assistance: Decimal = ZERO
    released: bool = False
    recovered: bool = False
    assessment: Assessment | None = None
    recovery: Recovery | None = None
    events: list[ev.EventData] = field(default_factory=list)

    @classmethod
    def of(cls, calculation_id: uuid.UUID, person_ref: str, decision: ev.EligibilityDecided,
           settlement_json: dict[str, Any] | None = None) -> "Calculation":
        """A calculation of an eligible settlement, waiting for the money rule (`calculate`); `settlement_json`
        is the decision's settlement in its JSON form when the caller has it (as received)."""
        s = decision.settlement
        return cls(calculation_id=calculation_id, settlement_id=s.settlement_id, person_ref=person_ref,
                   year=s.discharge_date.year, category=decision.category,
                   district_code=decision.district_code or "", subdistrict_code=decision.subdistrict_code or "",
                   status=CalculationStatus.NO_POLICY,
                   assessment=Assessment(settlement=s, settlement_json=settlement_json))

    @property
    def ledger_keys(self) -> set[LedgerKey]:
        """The ledgers closing or reversing this calculation would change (none once its share is back)."""
        holds_share = not self.released and self.status is not CalculationStatus.NO_POLICY
        return {(self.person_ref, self.year)} if holds_share else set()

    def calculate(self, policies: Iterable[Policy], ledgers: Ledgers) -> bool:
        """Apply the money rule under the policy covering the region and discharge date, charging the person's
        ledger, and raise AssistanceCalculated. False (still no_policy) when no policy covers the category."""
        if self.status is not CalculationStatus.NO_POLICY or self.assessment is None:
            return False
        s = self.assessment.settlement
        policy = select_policy(policies, self.district_code, s.discharge_date)
        if policy is None or self.category is None or self.category not in policy.categories:
            return False
        ledger = ledgers.get(self.person_ref, self.year)
        result = money_rule.calculate(amounts_of(s), self.category.value, policy, ledger)
        ledgers.put(self.person_ref, result.ledger_after)
        figures = figures_of(s, result)
        self.assessment = replace(self.assessment, figures=figures, policy_id=policy.policy_id,
                                  policy_version=policy.version)
        self.status = CalculationStatus.CALCULATED
        self.deductible_applied, self.assistance = result.deductible_applied, result.assistance
        self.events.append(ev.AssistanceCalculated(
            calculation_id=self.calculation_id, settlement_id=s.settlement_id, hospital_id=s.hospital_id,
            category=self.category, district_code=self.district_code, subdistrict_code=self.subdistrict_code,
            visit_type=s.visit_type, hospital_level=s.hospital_level,
            hospital_settlement_id=s.hospital_settlement_id, admission_date=s.admission_date,
            discharge_date=s.discharge_date, year=self.year, policy_id=policy.policy_id,
            policy_version=policy.version, total_amount=s.total_amount, figures=figures,
        ))
        return True

    def approve(self) -> None:
        """The case was approved: on its way to the bank."""
        if self.status is CalculationStatus.CALCULATED:
            self.status = CalculationStatus.APPROVED

    def close(self, decision: CalculationStatus, ledgers: Ledgers) -> None:
        """The case was rejected or cancelled: its share goes back to the ledger (not once paid or reversed)."""
        if decision not in (CalculationStatus.REJECTED, CalculationStatus.CANCELLED):
            raise ValueError(f"a case is closed as rejected or cancelled, not {decision}")
        if self.status in (CalculationStatus.REVERSED, CalculationStatus.PAID):
            return
        self._give_back(ledgers)
        self.status = decision

    def settle(self, amount: Decimal, now: datetime | None = None) -> None:
        """The bank settled the transfer. When the hospital reversed the settlement meanwhile (a race with the
        bank), the money that left is recovered."""
        if self.status is CalculationStatus.REVERSED:
            self._open_recovery(amount, now)
        else:
            self.status = CalculationStatus.PAID

    def reverse(self, ledgers: Ledgers, now: datetime | None = None) -> None:
        """The hospital reversed the settlement: before payment its share goes back to the ledger, after
        payment a recovery is opened. Raises AssistanceReversed (and RecoveryOpened after it)."""
        if self.status is CalculationStatus.REVERSED:
            return
        released = ZERO
        if self.status is CalculationStatus.PAID:
            opened = self._recovery_opened(self.assistance, now)
        else:
            opened, released = None, self._give_back(ledgers)
        self.status = CalculationStatus.REVERSED
        self.events.append(ev.AssistanceReversed(
            calculation_id=self.calculation_id, settlement_id=self.settlement_id, released_assistance=released,
            recovery_id=opened.recovery_id if opened else None))
        if opened:
            self._announce(opened)

    def _give_back(self, ledgers: Ledgers) -> Decimal:
        """Return the deductible and assistance to the ledger, once; how much assistance went back."""
        if not self.ledger_keys:
            return ZERO
        ledger = ledgers.get(self.person_ref, self.year)
        ledgers.put(self.person_ref, money_rule.release(ledger, self.deductible_applied, self.assistance))
        self.released = True
        return self.assistance

    def _recovery_opened(self, amount: Decimal, now: datetime | None) -> Recovery | None:
        """One recovery per calculation: the one opened now, or None when it was open already."""
        if self.recovered:
            return None
        self.recovered = True
        self.recovery = Recovery(new_id(), amount, now or datetime.now(UTC))
        return self.recovery

    def _open_recovery(self, amount: Decimal, now: datetime | None) -> None:
        opened = self._recovery_opened(amount, now)
        if opened:
            self._announce(opened)

    def _announce(self, recovery: Recovery) -> None:
        self.events.append(ev.RecoveryOpened(
            recovery_id=recovery.recovery_id, calculation_id=self.calculation_id, settlement_id=self.settlement_id,
            district_code=self.district_code, amount=recovery.amount, opened_at=recovery.opened_at))
