"""The reviewer's flags as SQL on a case row: one definition for the queue's filter and the case view."""

from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, select
from sqlalchemy.orm import aliased
from sqlmodel import col

from approval.adapters.tables import CaseRecord, PersonCalculation, PersonView
from approval.domain.review import Flag, FlagRules


def flag_conditions(rules: FlagRules, now: datetime) -> dict[Flag, ColumnElement[bool]]:
    """Each flag as a boolean expression correlated to CaseRecord (indexes: case.person_ref, person_calculation)."""
    other = aliased(CaseRecord)
    pc = PersonCalculation
    discharge, person = col(CaseRecord.discharge_date), col(CaseRecord.person_ref)
    in_window = select(func.count()).where(
        col(pc.person_ref) == person,
        col(pc.discharge_date) >= discharge - rules.frequent_days,
        col(pc.discharge_date) <= discharge + rules.frequent_days).scalar_subquery()
    return {
        Flag.LARGE_AMOUNT: col(CaseRecord.amount) >= rules.large_amount,
        Flag.FREQUENT_SETTLEMENTS: in_window >= rules.frequent_count,
        # paid, then reversed by the hospital: calculation opened a recovery for the money
        Flag.REVERSAL_PENDING: exists().where(and_(col(other.person_ref) == person,
                                                   col(other.recovery_id).is_not(None))),
        Flag.ACCOUNT_CHANGED_RECENTLY: exists().where(and_(
            col(PersonView.person_ref) == person,
            col(PersonView.account_changed_at) >= rules.account_changed_since(now))),
        Flag.PAYMENT_FAILED_BEFORE: exists().where(and_(col(other.person_ref) == person,
                                                        col(other.payment_failures) > 0)),
    }
