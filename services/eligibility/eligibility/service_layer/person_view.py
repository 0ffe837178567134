"""What the reviewer's case view needs from the registry, published as the person's entry now stands.

Approval keeps the latest entry per person (ADR 0014), so no reviewer's page calls eligibility. The entries go
many to an event (`PersonsRecorded`, ADR 0033). The name and national ID are re-encrypted from the at-rest key
to the case-view transport key.
"""

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import orjson

from eligibility.adapters.repositories import PersonEntry
from eligibility.config import Keys
from eligibility.domain.registry import RegistryRecordIn
from eligibility.service_layer.unit_of_work import EligibilityUnitOfWork
from shared.contracts.events import PersonsRecorded
from shared.contracts.topics import REGISTRY_PERSON


async def publish_person_records(uow: EligibilityUnitOfWork, keys: Keys, refs: Collection[str],
                                 imported: Mapping[str, RegistryRecordIn] | None = None,
                                 stored: Sequence[PersonEntry] | None = None) -> int:
    """The entry of every registered person among `refs`, in PersonsRecorded events (three queries in all, two
    when the entries of `refs` were just `stored`: they are not read back); returns how many persons. The identity
    of a person in `imported` (records just stored) is taken from the record, not decrypted again."""
    if not refs:
        return 0
    records = await uow.registry.records(refs, stored)
    entries: list[dict[str, Any]] = []
    for person in records.persons:
        ref = person.person_ref
        record = imported.get(ref) if imported else None
        name, national_id = (record.name, record.national_id) if record else (
            keys.at_rest.decrypt(person.name_enc, ref), keys.at_rest.decrypt(person.national_id_enc, ref))
        identity = orjson.dumps({"name": name, "national_id": national_id}).decode()
        periods = [{"category": p.category, "valid_from": p.valid_from.isoformat(),
                    "valid_to": p.valid_to and p.valid_to.isoformat()} for p in records.periods.get(ref, [])]
        consents = [{"signed_on": c.signed_on.isoformat(), "revoked_on": c.revoked_on and c.revoked_on.isoformat()}
                    for c in records.consents.get(ref, [])]
        entries.append({"person_ref": ref, "identity_ciphertext": keys.case_view.encrypt(identity, ref),
                        "district_code": person.district_code, "subdistrict_code": person.subdistrict_code,
                        "periods": periods[-100:], "consents": consents[-100:],
                        "account_version": person.account_version})
    uow.publish_chunked(REGISTRY_PERSON, PersonsRecorded, entries)
    return len(entries)
