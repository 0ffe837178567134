"""What the case view keeps from events: the registry's entry per person and every calculation of theirs.

Both are read models fed in the consumer's transaction, in bulk: a reviewer's page never calls another service.
"""

from collections.abc import Sequence
from typing import Any

from approval.adapters.repositories import CalculationRepository, PersonRepository
from shared.contracts import events as ev
from shared.messaging.consumer import Event


async def record_people(people: PersonRepository, events: Sequence[Event]) -> None:
    """Keep each person's latest registry entry; a higher account version than the one kept is an account change."""
    if not events:
        return
    latest: dict[str, Event] = {}
    for event in events:  # one person's events arrive in order: the last one is the entry now
        latest[event.envelope.person_ref] = event
    known = await people.locked(list(latest))
    rows: list[dict[str, Any]] = []
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
    await people.upsert(rows)


async def record_calculations(calculations: CalculationRepository, events: Sequence[Event]) -> None:
    """Every calculation, those with nothing to pay too: each takes deductible from the person's year."""
    rows = []
    for event in events:
        calc = event.data
        assert isinstance(calc, ev.AssistanceCalculated)
        rows.append({"calculation_id": calc.calculation_id, "settlement_id": calc.settlement_id,
                     "person_ref": event.envelope.person_ref, "year": calc.year, "hospital_id": calc.hospital_id,
                     "hospital_settlement_id": calc.hospital_settlement_id, "discharge_date": calc.discharge_date,
                     "deductible_applied": calc.figures.deductible_applied, "assistance": calc.figures.assistance,
                     "deductible": calc.figures.deductible, "cap": calc.figures.cap})
    await calculations.add(rows)
