"""What the case view keeps from events: the registry's entry per person and every calculation of theirs.

Both are read models fed in the consumer's transaction, in bulk: a reviewer's page never calls another service.
"""

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from approval.adapters.tables import PersonCalculation, PersonView
from shared.contracts import events as ev
from shared.messaging.consumer import Event


async def record_people(session: AsyncSession, events: Sequence[Event]) -> None:
    """Keep each person's latest registry entry; a higher account version than the one kept is an account change."""
    if not events:
        return
    latest: dict[str, Event] = {}
    for event in events:  # one person's events arrive in order: the last one is the entry now
        latest[event.envelope.person_ref] = event
    known = {p.person_ref: p for p in (await session.execute(
        select(PersonView).where(PersonView.person_ref.in_(list(latest))).with_for_update())).scalars()}  # type: ignore[attr-defined]
    rows = []
    for ref, event in latest.items():
        data = event.data
        assert isinstance(data, ev.PersonRecorded)
        old = known.get(ref)
        changed_at = old.account_changed_at if old else None
        if old and old.account_version >= 1 and data.account_version > old.account_version:
            changed_at = event.envelope.occurred_at
        rows.append({"person_ref": ref, "identity_enc": data.identity_ciphertext,
                     "district_code": data.district_code, "subdistrict_code": data.subdistrict_code,
                     "periods": [p.model_dump(mode="json") for p in data.periods],
                     "consents": [c.model_dump(mode="json") for c in data.consents],
                     "account_version": max(data.account_version, old.account_version if old else 0),
                     "account_changed_at": changed_at, "recorded_at": event.envelope.occurred_at})
    stmt = insert(PersonView)
    await session.execute(stmt.on_conflict_do_update(
        index_elements=[PersonView.person_ref], set_={c: stmt.excluded[c] for c in rows[0] if c != "person_ref"}),
        rows)


async def record_calculations(session: AsyncSession, events: Sequence[Event]) -> None:
    """Every calculation, those with nothing to pay too: each takes deductible from the person's year."""
    if not events:
        return
    rows = []
    for event in events:
        calc = event.data
        assert isinstance(calc, ev.AssistanceCalculated)
        rows.append({"calculation_id": calc.calculation_id, "settlement_id": calc.settlement_id,
                     "person_ref": event.envelope.person_ref, "year": calc.year, "hospital_id": calc.hospital_id,
                     "hospital_settlement_id": calc.hospital_settlement_id, "discharge_date": calc.discharge_date,
                     "deductible_applied": calc.figures.deductible_applied, "assistance": calc.figures.assistance,
                     "deductible": calc.figures.deductible, "cap": calc.figures.cap})
    await session.execute(insert(PersonCalculation).on_conflict_do_nothing(), rows)


async def release_calculations(session: AsyncSession, calculation_ids: Sequence[UUID]) -> None:
    """A rejected case, or a settlement reversed before payment, gives its share of the year back."""
    await session.execute(update(PersonCalculation).where(
        PersonCalculation.calculation_id.in_(list(calculation_ids)))  # type: ignore[attr-defined]
        .values(released=True))
