"""The reviewer's flags as SQL on a case row: one definition for the queue's filter and the case view."""

from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.orm import aliased

from approval.adapters.tables import CaseRecord, PersonCalculation, PersonView
from approval.domain.review import Flag, FlagRules


def flag_conditions(rules: FlagRules, now: datetime) -> dict[Flag, ColumnElement[bool]]:
    """Each flag as a boolean expression correlated to CaseRecord (indexes: case.person_ref, person_calculation)."""
    other = aliased(CaseRecord)
    pc = PersonCalculation
    in_window = select(func.count()).where(
        pc.person_ref == CaseRecord.person_ref,
        pc.discharge_date >= CaseRecord.discharge_date - rules.frequent_days,
        pc.discharge_date <= CaseRecord.discharge_date + rules.frequent_days).scalar_subquery()
    return {
        Flag.LARGE_AMOUNT: CaseRecord.amount >= rules.large_amount,
        Flag.FREQUENT_SETTLEMENTS: in_window >= rules.frequent_count,
        # paid, then reversed by the hospital: calculation opened a recovery for the money
        Flag.REVERSAL_PENDING: exists().where(and_(other.person_ref == CaseRecord.person_ref,
                                                   other.recovery_id.is_not(None))),  # type: ignore[union-attr]
        Flag.ACCOUNT_CHANGED_RECENTLY: exists().where(and_(
            PersonView.person_ref == CaseRecord.person_ref,
            PersonView.account_changed_at >= rules.account_changed_since(now))),  # type: ignore[operator]
        Flag.PAYMENT_FAILED_BEFORE: exists().where(and_(other.person_ref == CaseRecord.person_ref,
                                                        other.payment_failures > 0)),
    }
