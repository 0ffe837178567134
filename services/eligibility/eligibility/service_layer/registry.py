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

from eligibility.adapters.tables import ConsentRecord, Contact, Person, RegistryPeriod
from eligibility.domain.registry import RegistryRecordIn
from eligibility.service_layer.person_view import publish_person_records
from eligibility.service_layer.screening import rescreen_parked
from shared.contracts.envelope import Envelope
from shared.contracts.events import ContactUpdated, PayeeAccountUpdated
from shared.contracts.topics import REGISTRY_CONTACT, REGISTRY_PAYEE
from shared.db import LOCK_PERSON, lock_keys
from shared.messaging.outbox import Outgoing, add_events
from shared.problems import ProblemError
from shared.security.crypto import FieldCipher, mask_account, mask_phone, person_ref
from shared.settings import ServiceSettings


@dataclass(frozen=True)
class Keys:
    """The keys eligibility works with: pepper for pseudonyms, at-rest cipher, payee, case-view and contact
    transport."""

    pepper: bytes
    at_rest: FieldCipher
    payee: FieldCipher
    case_view: FieldCipher
    contact: FieldCipher


@dataclass(frozen=True)
class ImportResult:
    records: int
    persons_created: int
    periods_upserted: int
    payee_updates: int
    rescreened: int
    contact_updates: int = 0


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
    contacts = await update_contacts(session, settings, keys,
                                     phones={ref: r.phone for ref, r in by_ref.items() if r.phone})
    rescreened = await rescreen_parked(session, settings, by_ref)
    return ImportResult(len(records), len(set(by_ref) - set(existing)), len(period_rows), len(payee_events),
                        rescreened, contacts)


async def update_contacts(session: AsyncSession, settings: ServiceSettings, keys: Keys, *,
                          phones: dict[str, str] | None = None, opt_outs: dict[str, bool] | None = None) -> int:
    """Store new phone numbers (encrypted) and SMS opt-outs; publish each changed contact, whole and versioned,
    with the phone only under the contact transport key (docs/decisions/0022). Returns how many changed."""
    phones, opt_outs = phones or {}, opt_outs or {}
    refs = sorted(set(phones) | set(opt_outs))
    if not refs:
        return 0
    existing = {c.person_ref: c for c in (await session.execute(
        select(Contact).where(Contact.person_ref.in_(refs)).with_for_update())).scalars()}  # type: ignore[attr-defined]
    rows, events = [], []
    for ref in refs:
        old = existing.get(ref) or Contact(person_ref=ref)
        phone_enc, fingerprint, masked, plain = old.phone_enc, old.phone_fingerprint, old.phone_masked, None
        if ref in phones and (new_fp := _fingerprint(keys.pepper, phones[ref], "phone")) != fingerprint:
            plain = phones[ref]
            phone_enc, fingerprint, masked = keys.at_rest.encrypt(plain, ref), new_fp, mask_phone(plain)
        opt_out = opt_outs.get(ref, old.sms_opt_out)
        if plain is None and opt_out == old.sms_opt_out:
            continue  # nothing changed: no new version, no event
        if plain is None and phone_enc:
            plain = keys.at_rest.decrypt(phone_enc, ref)
        version = old.version + 1
        rows.append({"person_ref": ref, "phone_enc": phone_enc, "phone_fingerprint": fingerprint,
                     "phone_masked": masked, "sms_opt_out": opt_out, "version": version,
                     "updated_at": datetime.now(UTC)})
        data = ContactUpdated(contact_version=version, phone_masked=masked, sms_opt_out=opt_out,
                              phone_ciphertext=keys.contact.encrypt(plain, ref) if plain else None)
        events.append(Outgoing(REGISTRY_CONTACT, Envelope.wrap(data, person_ref=ref, producer="eligibility")))
    for chunk in _chunks(rows):
        stmt = insert(Contact).values(chunk)
        await session.execute(stmt.on_conflict_do_update(
            index_elements=[Contact.person_ref], set_={c: stmt.excluded[c] for c in chunk[0] if c != "person_ref"}))
    await add_events(session, settings, events)
    return len(events)


def _chunks(rows: list[dict[str, Any]], size: int = 1000) -> list[list[dict[str, Any]]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


async def sign_consent(session: AsyncSession, settings: ServiceSettings, keys: Keys, national_id: str,
                       signed_on: date, channel: str, recorded_by: str,
                       sms_opt_out: bool = False) -> tuple[ConsentRecord, int]:
    """Record a signed consent (with the person's SMS choice) and re-screen the person's parked settlements."""
    ref = person_ref(keys.pepper, national_id)
    consent = ConsentRecord(id=uuid.uuid4(), person_ref=ref, signed_on=signed_on, channel=channel,
                            recorded_by=recorded_by, sms_opt_out=sms_opt_out)
    session.add(consent)
    await session.flush()
    await publish_person_records(session, settings, keys.at_rest, keys.case_view, [ref])
    await update_contacts(session, settings, keys, opt_outs={ref: sms_opt_out})
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

