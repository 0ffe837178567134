"""Registry import and consent: each change screens the person's parked settlements again."""

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from eligibility.adapters.tables import ConsentRecord, Person, RegistryPeriod
from eligibility.domain.registry import RegistryRecordIn
from eligibility.service_layer.person_view import publish_person_records
from eligibility.service_layer.screening import rescreen_parked
from shared.contracts.envelope import Envelope
from shared.contracts.events import PayeeAccountUpdated
from shared.contracts.topics import REGISTRY_PAYEE
from shared.db import LOCK_PERSON, lock_keys
from shared.messaging.outbox import Outgoing, add_events
from shared.problems import ProblemError
from shared.security.crypto import FieldCipher, mask_account, person_ref
from shared.settings import ServiceSettings


@dataclass(frozen=True)
class Keys:
    """The keys eligibility works with: pepper for pseudonyms, at-rest cipher, payee and case-view transport."""

    pepper: bytes
    at_rest: FieldCipher
    payee: FieldCipher
    case_view: FieldCipher


@dataclass(frozen=True)
class ImportResult:
    records: int
    persons_created: int
    periods_upserted: int
    payee_updates: int
    rescreened: int


def _fingerprint(pepper: bytes, account: str, name: str) -> str:
    return hashlib.sha256(pepper + b"|" + account.encode() + b"|" + name.encode()).hexdigest()


async def import_registry(session: AsyncSession, settings: ServiceSettings, keys: Keys,
                          records: Sequence[RegistryRecordIn]) -> ImportResult:
    """Upsert persons and category periods; publish changed bank accounts (encrypted); re-screen parked."""
    by_ref = {person_ref(keys.pepper, r.national_id): r for r in records}  # last record of a person wins
    await lock_keys(session, LOCK_PERSON, by_ref)  # imports of the same persons at once take turns
    existing = {p.person_ref: p for p in (await session.execute(
        select(Person).where(Person.person_ref.in_(list(by_ref))).with_for_update())).scalars()}  # type: ignore[attr-defined]
    person_rows, payee_events = [], []
    for ref, r in by_ref.items():
        old = existing.get(ref)
        row = {
            "person_ref": ref,
            "national_id_enc": keys.at_rest.encrypt(r.national_id, ref),
            "name_enc": keys.at_rest.encrypt(r.name, ref),
            "district_code": r.district_code,
            "subdistrict_code": r.subdistrict_code,
            "bank_account_enc": old.bank_account_enc if old else None,
            "bank_account_fingerprint": old.bank_account_fingerprint if old else None,
            "account_masked": old.account_masked if old else None,
            "account_version": old.account_version if old else 0,
            "updated_at": datetime.now(UTC),
        }
        if r.bank_account:
            fingerprint = _fingerprint(keys.pepper, r.bank_account, r.name)
            if fingerprint != row["bank_account_fingerprint"]:
                row["bank_account_enc"] = keys.at_rest.encrypt(r.bank_account, ref)
                row["bank_account_fingerprint"] = fingerprint
                row["account_masked"] = mask_account(r.bank_account)
                row["account_version"] = int(row["account_version"]) + 1  # type: ignore[call-overload]
                payload = orjson.dumps({"account": r.bank_account, "name": r.name, "bank": r.bank_name}).decode()
                data = PayeeAccountUpdated(account_version=row["account_version"],
                                           payee_ciphertext=keys.payee.encrypt(payload, ref),
                                           account_masked=row["account_masked"])
                payee_events.append(Outgoing(REGISTRY_PAYEE, Envelope.wrap(data, person_ref=ref,
                                                                           producer="eligibility")))
        person_rows.append(row)
    for chunk in _chunks(person_rows):  # PostgreSQL takes at most 32767 parameters per statement
        stmt = insert(Person).values(chunk)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=[Person.person_ref],
            set_={c: stmt.excluded[c] for c in chunk[0] if c != "person_ref"},
        ))
    period_rows = [{"person_ref": person_ref(keys.pepper, r.national_id), "category": r.category.value,
                    "valid_from": r.valid_from, "valid_to": r.valid_to} for r in records]
    period_rows = list({(p["person_ref"], p["category"], p["valid_from"]): p for p in period_rows}.values())
    for chunk in _chunks(period_rows):
        stmt = insert(RegistryPeriod).values(chunk)
        await session.execute(stmt.on_conflict_do_update(
            constraint="uq_registry_period", set_={"valid_to": stmt.excluded.valid_to}))
    await add_events(session, settings, payee_events)
    await publish_person_records(session, settings, keys.at_rest, keys.case_view, by_ref)
    rescreened = await rescreen_parked(session, settings, by_ref)
    return ImportResult(len(records), len(set(by_ref) - set(existing)), len(period_rows), len(payee_events),
                        rescreened)


def _chunks(rows: list[dict[str, Any]], size: int = 1000) -> list[list[dict[str, Any]]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


async def sign_consent(session: AsyncSession, settings: ServiceSettings, keys: Keys, national_id: str,
                       signed_on: date, channel: str, recorded_by: str) -> tuple[ConsentRecord, int]:
    """Record a signed consent and re-screen the person's parked settlements."""
    ref = person_ref(keys.pepper, national_id)
    consent = ConsentRecord(id=uuid.uuid4(), person_ref=ref, signed_on=signed_on, channel=channel,
                            recorded_by=recorded_by)
    session.add(consent)
    await session.flush()
    await publish_person_records(session, settings, keys.at_rest, keys.case_view, [ref])
    return consent, await rescreen_parked(session, settings, [ref])


async def revoke_consent(session: AsyncSession, settings: ServiceSettings, keys: Keys, consent_id: uuid.UUID,
                         revoked_on: date) -> ConsentRecord:
    """Revoke from a date on: settlements discharged before it are unaffected."""
    consent = await session.get(ConsentRecord, consent_id, with_for_update=True)
    if consent is None:
        raise ProblemError(404, "consent_not_found", "no such consent", field="consent_id")
    if revoked_on < consent.signed_on:
        raise ProblemError(422, "invalid_input", "revoked_on is before signed_on", field="revoked_on")
    if consent.revoked_on is None or revoked_on < consent.revoked_on:
        await session.execute(update(ConsentRecord).where(ConsentRecord.id == consent_id)
                              .values(revoked_on=revoked_on))
        consent.revoked_on = revoked_on
        await publish_person_records(session, settings, keys.at_rest, keys.case_view, [consent.person_ref])
    return consent

