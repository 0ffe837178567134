"""Registry import and consent: each change screens the person's parked settlements again.

Who may change whose entry or consent is decided here (docs/decisions/0014), with the one area rule
(shared.security.area); refusals are domain errors the entrypoints map to problems."""

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import orjson

from eligibility.adapters.repositories import AccountOnFile, PersonEntry
from eligibility.adapters.tables import ConsentRow, ContactRow
from eligibility.config import Keys
from eligibility.domain.registry import RegistryRecordIn
from eligibility.service_layer.person_view import publish_person_records
from eligibility.service_layer.screening import rescreen_parked
from eligibility.service_layer.unit_of_work import EligibilityUnitOfWork
from shared.contracts.events import ContactsUpdated, PayeeAccountsUpdated
from shared.contracts.topics import REGISTRY_CONTACT, REGISTRY_PAYEE
from shared.errors import Forbidden, Invalid, NotFound
from shared.security.crypto import mask_account, mask_phone, person_ref
from shared.security.staff_auth import Principal, Role

RegistryStatus = Literal["listed", "waiting_for_registry"]
LISTED: RegistryStatus = "listed"
WAITING_FOR_REGISTRY: RegistryStatus = "waiting_for_registry"


@dataclass(frozen=True)
class ImportResult:
    records: int
    persons_created: int
    periods_upserted: int
    payee_updates: int
    rescreened: int
    contact_updates: int = 0


@dataclass(frozen=True)
class ConsentResult:
    consent: ConsentRow
    registry_status: RegistryStatus
    rescreened: int = 0
    recorded: bool = True
    """False when the same consent was recorded before (a retry) and is returned as it was."""


def _fingerprint(pepper: bytes, account: str, name: str) -> str:
    return hashlib.sha256(pepper + b"|" + account.encode() + b"|" + name.encode()).hexdigest()


async def import_registry(uow: EligibilityUnitOfWork, keys: Keys, officer: Principal,
                          records: Sequence[RegistryRecordIn]) -> ImportResult:
    """Upsert persons and category periods; publish changed bank accounts (encrypted) and the entries, many
    persons to an event; re-screen parked.

    One statement per table for the whole import, whatever its size (docs/decisions/0031)."""
    refs = [person_ref(keys.pepper, r.national_id) for r in records]
    by_ref = dict(zip(refs, records, strict=True))  # last record of a person wins
    await _inside_area(uow, officer, refs, records)
    await uow.registry.lock(by_ref)  # imports of the same persons at once take turns
    on_file = await uow.registry.accounts_locked(list(by_ref))
    now, person_rows, payees = datetime.now(UTC), [], []
    for ref, r in by_ref.items():
        row, payee = _person_row(keys, ref, r, on_file.get(ref), now)
        person_rows.append(row)
        if payee is not None:
            payees.append(payee)
    uow.publish_chunked(REGISTRY_PAYEE, PayeeAccountsUpdated, payees)
    await uow.registry.save_persons(person_rows)
    period_rows = list({(ref, r.category.value, r.valid_from): {
        "person_ref": ref, "category": r.category.value, "valid_from": r.valid_from, "valid_to": r.valid_to}
        for ref, r in zip(refs, records, strict=True)}.values())
    await uow.registry.save_periods(period_rows)
    await publish_person_records(uow, keys, by_ref, imported=by_ref, stored=[PersonEntry(
        row["person_ref"], row["national_id_enc"], row["name_enc"], row["district_code"], row["subdistrict_code"],
        row["account_version"]) for row in person_rows])
    contacts = await update_contacts(uow, keys, phones={ref: r.phone for ref, r in by_ref.items() if r.phone})
    rescreened = await rescreen_parked(uow, by_ref)
    return ImportResult(len(records), len(by_ref.keys() - on_file.keys()), len(period_rows), len(payees),
                        rescreened, contacts)


def _person_row(keys: Keys, ref: str, r: RegistryRecordIn, old: AccountOnFile | None, now: datetime
                ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The person's entry as the record has it (identity encrypted), and the new account to publish (under
    the payee key, versioned; an UpdatedPayeeAccount as JSON) when the record changes it."""
    row: dict[str, Any] = {
        "person_ref": ref,
        "national_id_enc": keys.at_rest.encrypt(r.national_id, ref),
        "name_enc": keys.at_rest.encrypt(r.name, ref),
        "district_code": r.district_code,
        "subdistrict_code": r.subdistrict_code,
        "bank_account_enc": old.bank_account_enc if old else None,
        "bank_account_fingerprint": old.bank_account_fingerprint if old else None,
        "account_masked": old.account_masked if old else None,
        "account_version": old.account_version if old else 0,
        "updated_at": now,
    }
    if not r.bank_account:
        return row, None
    fingerprint = _fingerprint(keys.pepper, r.bank_account, r.name)
    if fingerprint == row["bank_account_fingerprint"]:
        return row, None
    row["bank_account_enc"] = keys.at_rest.encrypt(r.bank_account, ref)
    row["bank_account_fingerprint"] = fingerprint
    row["account_masked"] = mask_account(r.bank_account)
    row["account_version"] = int(row["account_version"]) + 1
    payload = orjson.dumps({"account": r.bank_account, "name": r.name, "bank": r.bank_name}).decode()
    return row, {"person_ref": ref, "account_version": row["account_version"],
                 "payee_ciphertext": keys.payee.encrypt(payload, ref), "account_masked": row["account_masked"]}


async def _inside_area(uow: EligibilityUnitOfWork, officer: Principal, refs: Sequence[str],
                       records: Sequence[RegistryRecordIn]) -> None:
    """A registry officer confined to a district imports only records of it, and only for persons the registry
    lists there or nowhere yet (a move between districts is for a city-wide officer): refused whole otherwise."""
    if officer.area.everywhere:
        return
    current = await uow.registry.districts(refs)
    errors = [{"index": i, "field": f"records.{i}.district_code", "code": "outside_area",
               "message": "outside your area"}
              for i, (r, ref) in enumerate(zip(records, refs, strict=True))
              if not officer.area.contains(r.district_code, r.subdistrict_code)
              or not officer.area.contains(current.get(ref, r.district_code), r.subdistrict_code)]
    if errors:
        raise Forbidden("outside_area", f"{len(errors)} record(s) outside your area; nothing was stored",
                        field=str(errors[0]["field"]), errors=errors)


async def update_contacts(uow: EligibilityUnitOfWork, keys: Keys, *,
                          phones: dict[str, str] | None = None, opt_outs: dict[str, bool] | None = None) -> int:
    """Store new phone numbers (encrypted) and SMS opt-outs; publish the changed contacts, each whole and
    versioned, with the phone only under the contact transport key (docs/decisions/0022), many to an event
    (docs/decisions/0033). Returns how many changed."""
    phones, opt_outs = phones or {}, opt_outs or {}
    refs = sorted(set(phones) | set(opt_outs))
    if not refs:
        return 0
    existing = await uow.contacts.locked(refs)
    rows, changed = [], []
    for ref in refs:
        old = existing.get(ref) or ContactRow(person_ref=ref, updated_at=datetime.now(UTC))
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
        changed.append({"person_ref": ref, "contact_version": version, "phone_masked": masked, "sms_opt_out": opt_out,
                        "phone_ciphertext": keys.contact.encrypt(plain, ref) if plain else None})
    uow.publish_chunked(REGISTRY_CONTACT, ContactsUpdated, changed)
    await uow.contacts.save(rows)
    return len(rows)


async def _consent_holder(uow: EligibilityUnitOfWork, recorder: Principal, ref: str,
                          not_found: NotFound) -> RegistryStatus:
    """Who may record or revoke a person's consent (docs/decisions/0014): staff of the person's area (a clerk
    of their sub-district, a registry officer of their district or the city); for a person the registry does
    not list yet, registry officers only. Anyone else gets `not_found`. Returns the registry status."""
    await uow.registry.lock([ref])  # one consent change of a person at a time
    person = await uow.registry.person(ref)
    if person is None:
        if recorder.role != Role.registry_officer:
            raise not_found
        return WAITING_FOR_REGISTRY
    if not recorder.area.contains(person.district_code, person.subdistrict_code):
        raise not_found
    return LISTED


async def sign_consent(uow: EligibilityUnitOfWork, keys: Keys, recorder: Principal, national_id: str,
                       signed_on: date, channel: str, sms_opt_out: bool = False) -> ConsentResult:
    """Record a signed consent (with the person's SMS choice) and re-screen the person's parked settlements.
    The same consent recorded again (same person and date, not revoked) is the first one, unchanged."""
    ref = person_ref(keys.pepper, national_id)
    status = await _consent_holder(uow, recorder, ref, NotFound(
        "person_not_found", "this person is not in the registry of your area", field="national_id"))
    existing = await uow.registry.open_consent(ref, signed_on)
    if existing is not None:
        return ConsentResult(existing, status, recorded=False)
    consent = ConsentRow(id=uuid.uuid4(), person_ref=ref, signed_on=signed_on, channel=channel,
                         recorded_by=recorder.subject, sms_opt_out=sms_opt_out, created_at=datetime.now(UTC))
    await uow.registry.add_consent(consent)
    await publish_person_records(uow, keys, [ref])
    await update_contacts(uow, keys, opt_outs={ref: sms_opt_out})
    return ConsentResult(consent, status, await rescreen_parked(uow, [ref]))


async def revoke_consent(uow: EligibilityUnitOfWork, keys: Keys, recorder: Principal, consent_id: uuid.UUID,
                         revoked_on: date) -> ConsentResult:
    """Revoke from a date on: settlements discharged before it are unaffected. Outside the recorder's area the
    consent does not exist."""
    not_found = NotFound("consent_not_found", "no such consent", field="consent_id")
    ref = await uow.registry.consent_person(consent_id)
    if ref is None:
        raise not_found
    status = await _consent_holder(uow, recorder, ref, not_found)
    consent = await uow.registry.consent(consent_id, for_update=True)
    if consent is None:
        raise not_found
    if revoked_on < consent.signed_on:
        raise Invalid("invalid_input", "revoked_on is before signed_on", field="revoked_on")
    if consent.revoked_on is None or revoked_on < consent.revoked_on:
        await uow.registry.revoke_consent(consent_id, revoked_on)
        consent.revoked_on = revoked_on
        await publish_person_records(uow, keys, [consent.person_ref])
    return ConsentResult(consent, status)
