"""What the reviewer's case view needs from the registry, published as the person's entry now stands.

Approval keeps the latest `PersonRecorded` per person (ADR 0014), so no reviewer's page calls eligibility.
The name and national ID are re-encrypted from the at-rest key to the case-view transport key.
"""

from collections.abc import Collection

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from eligibility.adapters.tables import ConsentRecord, Person, RegistryPeriod
from shared.contracts.envelope import Envelope
from shared.contracts.events import CategoryPeriod, ConsentPeriod, PersonRecorded
from shared.contracts.topics import REGISTRY_PERSON
from shared.messaging.outbox import Outgoing, add_events
from shared.security.crypto import FieldCipher
from shared.settings import ServiceSettings


async def publish_person_records(session: AsyncSession, settings: ServiceSettings, at_rest: FieldCipher,
                                 case_view: FieldCipher, refs: Collection[str]) -> int:
    """One PersonRecorded per registered person among `refs` (three queries in all); returns how many."""
    if not refs:
        return 0
    refs = list(refs)
    persons = (await session.execute(select(Person).where(Person.person_ref.in_(refs)))).scalars().all()  # type: ignore[attr-defined]
    periods: dict[str, list[CategoryPeriod]] = {}
    for p in (await session.execute(select(RegistryPeriod).where(RegistryPeriod.person_ref.in_(refs))  # type: ignore[attr-defined]
                                    .order_by(RegistryPeriod.valid_from))).scalars():
        periods.setdefault(p.person_ref, []).append(
            CategoryPeriod(category=p.category, valid_from=p.valid_from, valid_to=p.valid_to))
    consents: dict[str, list[ConsentPeriod]] = {}
    for c in (await session.execute(select(ConsentRecord).where(ConsentRecord.person_ref.in_(refs))  # type: ignore[attr-defined]
                                    .order_by(ConsentRecord.signed_on))).scalars():
        consents.setdefault(c.person_ref, []).append(ConsentPeriod(signed_on=c.signed_on, revoked_on=c.revoked_on))
    outgoing = []
    for person in persons:
        ref = person.person_ref
        identity = orjson.dumps({"name": at_rest.decrypt(person.name_enc, ref),
                                 "national_id": at_rest.decrypt(person.national_id_enc, ref)}).decode()
        data = PersonRecorded(identity_ciphertext=case_view.encrypt(identity, ref),
                              district_code=person.district_code, subdistrict_code=person.subdistrict_code,
                              periods=periods.get(ref, [])[-100:], consents=consents.get(ref, [])[-100:],
                              account_version=person.account_version)
        outgoing.append(Outgoing(REGISTRY_PERSON, Envelope.wrap(data, person_ref=ref, producer="eligibility")))
    await add_events(session, settings, outgoing)
    return len(outgoing)
