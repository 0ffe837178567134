"""What the reviewer's case view needs from the registry, published as the person's entry now stands.

Approval keeps the latest `PersonRecorded` per person (ADR 0014), so no reviewer's page calls eligibility.
The name and national ID are re-encrypted from the at-rest key to the case-view transport key.
"""

from collections.abc import Collection

import orjson

from eligibility.config import Keys
from eligibility.service_layer.unit_of_work import EligibilityUnitOfWork
from shared.contracts.events import CategoryPeriod, ConsentPeriod, PersonRecorded
from shared.contracts.topics import REGISTRY_PERSON


async def publish_person_records(uow: EligibilityUnitOfWork, keys: Keys, refs: Collection[str]) -> int:
    """One PersonRecorded per registered person among `refs` (three queries in all); returns how many."""
    if not refs:
        return 0
    records = await uow.registry.records(refs)
    for person in records.persons:
        ref = person.person_ref
        identity = orjson.dumps({"name": keys.at_rest.decrypt(person.name_enc, ref),
                                 "national_id": keys.at_rest.decrypt(person.national_id_enc, ref)}).decode()
        periods = [CategoryPeriod(category=p.category, valid_from=p.valid_from, valid_to=p.valid_to)
                   for p in records.periods.get(ref, [])]
        consents = [ConsentPeriod(signed_on=c.signed_on, revoked_on=c.revoked_on)
                    for c in records.consents.get(ref, [])]
        uow.publish(REGISTRY_PERSON, ref, PersonRecorded(
            identity_ciphertext=keys.case_view.encrypt(identity, ref), district_code=person.district_code,
            subdistrict_code=person.subdistrict_code, periods=periods[-100:], consents=consents[-100:],
            account_version=person.account_version))
    return len(records.persons)
