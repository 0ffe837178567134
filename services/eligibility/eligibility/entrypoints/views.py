"""Reads for the API: a person's masked registry entry (every answer audited), screenings by reason, the policy
terms screening knows. Queries only; each opens its own transaction."""

from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from eligibility.adapters.tables import (
    ConsentRow,
    ContactRow,
    PersonRow,
    PolicyTermsRow,
    RegistryPeriodRow,
    ScreeningRow,
)
from eligibility.config import Keys
from shared.db import Database
from shared.security.crypto import mask_name, mask_national_id
from shared.security.read_audit import record_reads
from shared.security.staff_auth import Principal


async def person(db: Database, keys: Keys, reader: Principal, ref: str) -> dict[str, Any] | None:
    """The person's entry, masked, with periods, consents and screenings; None outside the reader's area (as
    for a person nobody registered). The read is recorded in the personal-data read audit."""
    async with db.transaction() as session:
        found = await session.get(PersonRow, ref)
        if found is None or not reader.area.contains(found.district_code, found.subdistrict_code):
            return None
        contact = await session.get(ContactRow, ref)
        await record_reads(session, reader, "person_lookup", [ref], ("national_id", "name"))
        periods = (await session.execute(select(RegistryPeriodRow).where(
            col(RegistryPeriodRow.person_ref) == ref))).scalars()
        consents = (await session.execute(select(ConsentRow).where(col(ConsentRow.person_ref) == ref))).scalars()
        screenings = (await session.execute(select(ScreeningRow).where(col(ScreeningRow.person_ref) == ref)
                                            .order_by(col(ScreeningRow.discharge_date)))).scalars()
        return {
            "person_ref": ref,
            "national_id": mask_national_id(keys.at_rest.decrypt(found.national_id_enc, ref)),
            "name": mask_name(keys.at_rest.decrypt(found.name_enc, ref)),
            "district_code": found.district_code,
            "subdistrict_code": found.subdistrict_code,
            "bank_account": found.account_masked,
            "phone": contact.phone_masked if contact else None,
            "sms_opt_out": contact.sms_opt_out if contact else False,
            "periods": [{"category": p.category, "valid_from": p.valid_from.isoformat(),
                         "valid_to": p.valid_to.isoformat() if p.valid_to else None} for p in periods],
            "consents": [{"consent_id": str(c.id), "signed_on": c.signed_on.isoformat(),
                          "revoked_on": c.revoked_on.isoformat() if c.revoked_on else None} for c in consents],
            "screenings": [{"settlement_id": str(s.settlement_id), "discharge_date": s.discharge_date.isoformat(),
                            "eligible": s.eligible, "reason": s.reason, "parked": s.parked,
                            "reversed": s.reversed, "consent_lookback": s.consent_lookback,
                            "lookback_policy_id": s.lookback_policy_id,
                            "lookback_policy_version": s.lookback_policy_version} for s in screenings],
        }


async def screenings_by_reason(db: Database, parked_only: bool) -> dict[str, int]:
    query = select(col(ScreeningRow.reason), func.count()).group_by(col(ScreeningRow.reason))
    if parked_only:
        query = query.where(col(ScreeningRow.parked))
    async with db.transaction() as session:
        return {reason: count for reason, count in (await session.execute(query)).all()}


async def policy_terms(db: Database, region_code: str | None) -> list[PolicyTermsRow]:
    """Every policy version screening knows (of one region), by region, start and version."""
    query = select(PolicyTermsRow).order_by(col(PolicyTermsRow.region_code), col(PolicyTermsRow.effective_from),
                                            col(PolicyTermsRow.version))
    if region_code:
        query = query.where(col(PolicyTermsRow.region_code) == region_code)
    async with db.transaction() as session:
        return list((await session.execute(query)).scalars())
