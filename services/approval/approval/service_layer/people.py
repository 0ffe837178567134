"""What the case view keeps from events: the registry's entry per person and every calculation of theirs.

Both are read models fed in the consumer's transaction, in bulk: a reviewer's page never calls another service.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from approval.adapters.repositories import CalculationRepository, PersonRepository
from shared.contracts import events as ev
from shared.messaging.consumer import Event


async def record_people(people: PersonRepository, events: Sequence[Event]) -> None:
    """Keep each person's latest registry entry (PersonsRecorded, many persons an event, or the earlier
    PersonRecorded of one); a higher account version than the one kept is an account change."""
    latest: dict[str, tuple[ev.PersonRecorded, datetime]] = {}
    for event in events:  # the registry's events arrive in the order written: a person's last one is the entry now
        for ref, data in ev.per_person(event.envelope.person_ref, event.data):
            assert isinstance(data, ev.PersonRecorded)
            latest[ref] = (data, event.envelope.occurred_at)
    if not latest:
        return
    known = await people.locked(list(latest))
    rows: list[dict[str, Any]] = []
    for ref, (data, occurred_at) in latest.items():
        old = known.get(ref)
        old_version, changed_at = (old.account_version, old.account_changed_at) if old else (0, None)
        if old_version >= 1 and data.account_version > old_version:
            changed_at = occurred_at
        rows.append({"person_ref": ref, "identity_enc": data.identity_ciphertext,
                     "district_code": data.district_code, "subdistrict_code": data.subdistrict_code,
                     "periods": [p.model_dump(mode="json") for p in data.periods],
                     "consents": [c.model_dump(mode="json") for c in data.consents],
                     "account_version": max(data.account_version, old_version),
                     "account_changed_at": changed_at, "recorded_at": occurred_at})
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
