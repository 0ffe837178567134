"""The reviewer's case view (a read): who, what, why this amount, the person's year so far, and the flags.

Everything comes from approval's own read models (fed by events); the name and national ID are decrypted
only here, for a clerk or reviewer whose area covers the case, and each such view is recorded.
"""

from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from approval.adapters.flags import flag_conditions
from approval.adapters.tables import CaseRecord, PersonCalculation, PersonView
from approval.dependencies import ReviewContext
from approval.domain.review import FLAG_LABELS, Figures, YearEntry, explain, year_so_far
from shared.contracts.events import AssistanceFigures
from shared.security.crypto import mask_national_id
from shared.security.read_audit import record_reads
from shared.security.staff_auth import Principal

PERSONAL_FIELDS = ("name", "national_id")


def _money(value: object) -> str | None:
    return None if value is None else f"{value:.2f}"


def _who(case: CaseRecord, person: PersonView | None, context: ReviewContext) -> dict[str, Any]:
    if person is None:  # the registry's entry has not arrived yet: say so rather than guess
        return {"known": False, "category": case.category, "district_code": case.district_code,
                "subdistrict_code": case.subdistrict_code}
    identity = orjson.loads(context.case_view.decrypt(person.identity_enc, person.person_ref))
    on = case.discharge_date
    periods = [p for p in person.periods if p["category"] == case.category]
    valid = next((p for p in periods if date.fromisoformat(p["valid_from"]) <= on
                  and (p["valid_to"] is None or on <= date.fromisoformat(p["valid_to"]))), None)
    period = valid or (periods[-1] if periods else None)
    consent = next((c for c in reversed(person.consents) if date.fromisoformat(c["signed_on"]) <= on), None)
    return {
        "known": True, "name": identity["name"], "national_id_masked": mask_national_id(identity["national_id"]),
        "category": case.category, "category_valid_from": period["valid_from"] if period else None,
        "category_valid_to": period["valid_to"] if period else None, "category_valid_on_discharge": valid is not None,
        "consent_signed_on": consent["signed_on"] if consent else None,
        "consent_revoked_on": consent["revoked_on"] if consent else None,
        "district_code": case.district_code, "subdistrict_code": case.subdistrict_code,
    }


def _what(case: CaseRecord, entries: list[PersonCalculation], context: ReviewContext) -> dict[str, Any]:
    calc = case.calculation
    figures = calc["figures"]
    this = next((e for e in entries if e.calculation_id == case.calculation_id), None)
    # A correction is the hospital's later settlement under the same settlement number (after a reversal).
    corrections = [e for e in entries if this is not None and e.hospital_id == this.hospital_id
                   and e.hospital_settlement_id == this.hospital_settlement_id and e.created_at > this.created_at]
    return {
        "hospital_id": case.hospital_id, "hospital_name": context.hospital_names.get(case.hospital_id),
        "hospital_level": calc.get("hospital_level"), "visit_type": calc.get("visit_type"),
        "hospital_settlement_id": calc.get("hospital_settlement_id"),
        "admission_date": calc.get("admission_date"), "discharge_date": case.discharge_date.isoformat(),
        "total_amount": calc.get("total_amount"), "policy_scope_amount": figures["policy_scope_amount"],
        "basic_insurance_paid": figures["basic_insurance_paid"],
        "critical_illness_paid": figures["critical_illness_paid"],
        "reversed": case.state == "cancelled" or case.recovery_id is not None,
        "corrected_by": [str(e.settlement_id) for e in corrections],
    }


def _why(case: CaseRecord) -> dict[str, Any]:
    """Every figure as calculation sent it (one name each, ADR 0016), and the same in plain words."""
    calc = case.calculation
    words = explain(Figures.of(calc["figures"]))
    stored = calc["figures"]  # rows once jsonb kept no key order: give the figures back in the money rule's order
    return {"policy_id": calc.get("policy_id"), "policy_version": calc.get("policy_version"),
            "figures": {name: stored[name] for name in AssistanceFigures.model_fields},
            "explanation_zh": words.zh, "explanation_en": words.en}


async def _year(session: AsyncSession, case: CaseRecord, entries: list[PersonCalculation]) -> dict[str, Any]:
    year = case.discharge_date.year
    mine = [e for e in entries if e.year == year]
    so_far = year_so_far(year, [YearEntry(e.discharge_date, e.deductible_applied, e.assistance, e.deductible,
                                          e.cap, e.released) for e in mine])
    cases = {c.calculation_id: c for c in (await session.execute(select(CaseRecord).where(
        col(CaseRecord.person_ref) == case.person_ref,
        col(CaseRecord.calculation_id).in_([e.calculation_id for e in mine])))).scalars()}
    return {
        "year": year, "deductible": _money(so_far.deductible), "deductible_used": _money(so_far.deductible_used),
        "deductible_left": _money(so_far.deductible_left), "committed": _money(so_far.committed),
        "cap": _money(so_far.cap), "cap_left": _money(so_far.cap_left),
        "settlements": [{
            "settlement_id": str(e.settlement_id), "calculation_id": str(e.calculation_id),
            "case_id": str(cases[e.calculation_id].id) if e.calculation_id in cases else None,
            "hospital_id": e.hospital_id, "discharge_date": e.discharge_date.isoformat(),
            "assistance": _money(e.assistance), "deductible_applied": _money(e.deductible_applied),
            "released": e.released, "this_case": e.calculation_id == case.calculation_id,
            "state": cases[e.calculation_id].state if e.calculation_id in cases else "nothing_to_pay",
            "payment_status": cases[e.calculation_id].payment_status if e.calculation_id in cases else None,
        } for e in sorted(mine, key=lambda e: (e.discharge_date, e.created_at))],
    }


async def _flags(session: AsyncSession, case: CaseRecord, context: ReviewContext) -> list[dict[str, str]]:
    conditions = flag_conditions(context.rules, datetime.now(UTC))
    row = (await session.execute(select(*[c.label(f.value) for f, c in conditions.items()])
                                 .where(col(CaseRecord.id) == case.id))).one()
    return [{"code": f.value, "label_zh": FLAG_LABELS[f][0], "label_en": FLAG_LABELS[f][1]}
            for f in conditions if getattr(row, f.value)]


async def case_review(session: AsyncSession, case: CaseRecord, viewer: Principal, context: ReviewContext
                      ) -> dict[str, Any]:
    """The reviewer's view of one case (already checked to be in the viewer's area); records the view."""
    person = await session.get(PersonView, case.person_ref)
    entries = list((await session.execute(select(PersonCalculation).where(
        col(PersonCalculation.person_ref) == case.person_ref))).scalars())
    who = _who(case, person, context)
    if who["known"]:  # decrypted for this reader: recorded in the same transaction as the answer
        await record_reads(session, viewer, "case_review", [case.person_ref], PERSONAL_FIELDS)
    return {"who": who, "what": _what(case, entries, context), "why": _why(case),
            "year_so_far": await _year(session, case, entries), "flags": await _flags(session, case, context)}
