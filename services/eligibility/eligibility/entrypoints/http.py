"""Registry officers import the registry; counter clerks and officers record consents; ops read screenings."""

import csv
import io
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from eligibility.adapters.tables import ConsentRecord, Contact, Person, PolicyTermsRecord, RegistryPeriod, Screening
from eligibility.domain.registry import CSV_COLUMNS, ConsentIn, RegistryRecordIn, RevokeIn
from eligibility.service_layer.registry import Keys, import_registry, revoke_consent, sign_consent
from shared.contracts.openapi import inline_schema, request_body
from shared.db import LOCK_PERSON, lock_keys
from shared.problems import ProblemError
from shared.request_guard import parsed_json
from shared.security.crypto import mask_name, mask_national_id, person_ref
from shared.security.national_id import validate_national_id
from shared.security.read_audit import record_reads
from shared.security.staff_auth import Principal, Role
from shared.service import Runtime, staff

router = APIRouter(prefix="/v1", tags=["registry"])
RegistryOfficer = Annotated[Principal, Depends(staff(Role.registry_officer))]
ConsentRecorder = Annotated[Principal, Depends(staff(Role.registry_officer, Role.clerk))]
Reader = Annotated[Principal, Depends(staff(Role.registry_officer, Role.ops))]
RECORD_EXAMPLE = {"national_id": "310110198001011236", "name": "王芳", "category": "subsistence",
                  "district_code": "310110", "subdistrict_code": "310110001", "valid_from": "2026-01-01",
                  "valid_to": None, "bank_account": "6222020200112233445", "bank_name": "ICBC Yangpu",
                  "phone": "13812345678"}
ConsentBody = Annotated[ConsentIn, Body(openapi_examples={"at the counter": {"value": {
    "national_id": "310110198001011236", "signed_on": "2026-01-15", "channel": "counter"}}})]


class ImportOut(BaseModel):
    records: int
    persons_created: int
    periods_upserted: int
    payee_updates: int
    rescreened: int
    contact_updates: int


LISTED, WAITING_FOR_REGISTRY = "listed", "waiting_for_registry"


class ConsentOut(BaseModel):
    consent_id: str
    person_ref: str
    signed_on: str
    revoked_on: str | None
    registry_status: Literal["listed", "waiting_for_registry"] = Field(
        description="waiting_for_registry: the registry does not list the person yet; screening starts when it does.")
    sms_opt_out: bool = False
    rescreened: int = 0


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _validation_problem(errors: list[dict[str, Any]]) -> ProblemError:
    return ProblemError(422, "invalid_input", f"{len({e.get('index') for e in errors})} record(s) invalid; "
                        "the import was refused whole and nothing was stored", field=errors[0]["field"],
                        errors=errors)


async def _records(request: Request) -> list[dict[str, Any]]:
    body = await request.body()  # at most max_body_bytes: shared.request_guard refused anything larger
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("text/csv"):
        try:
            # newline="": line ends inside quoted fields and bare CR line ends are the csv module's to read.
            reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline=""))
            columns, rows = reader.fieldnames, list(reader)
        except UnicodeDecodeError:
            raise ProblemError(400, "malformed_csv", "the CSV is not UTF-8") from None
        except csv.Error:
            raise ProblemError(400, "malformed_csv", f"the CSV cannot be read (line {reader.line_num})") from None
        if columns is None or set(columns) - set(CSV_COLUMNS):
            raise ProblemError(422, "invalid_input", f"CSV columns must be among {', '.join(CSV_COLUMNS)}",
                               field="header")
        return rows
    payload = parsed_json(request)  # strict: duplicate keys and deep nesting were refused (400)
    if not isinstance(payload, dict) or set(payload) != {"records"} or not isinstance(payload["records"], list):
        raise ProblemError(422, "invalid_input", 'expected {"records": [...]}', field="records")
    return payload["records"]  # type: ignore[no-any-return]


@router.post("/registry/import", response_model=ImportOut, openapi_extra=request_body({
    "application/json": {"type": "object", "additionalProperties": False, "required": ["records"],
                         "properties": {"records": {"type": "array", "items": inline_schema(RegistryRecordIn)}}},
    "text/csv": {"type": "string", "description": f"header: {','.join(CSV_COLUMNS)}"}}, examples={
    "application/json": {"records": [RECORD_EXAMPLE]},
    "text/csv": ",".join(CSV_COLUMNS) + "\n" + ",".join(str(RECORD_EXAMPLE[c] or "") for c in CSV_COLUMNS) + "\n"}))
async def import_records(request: Request, officer: RegistryOfficer) -> ImportOut:
    """Import or update registry records (JSON or CSV). All records are valid and stored, or none."""
    runtime = _runtime(request)
    raw = await _records(request)
    if not raw:
        raise ProblemError(422, "invalid_input", "no records", field="records")
    if len(raw) > runtime.settings.max_import_records:
        raise ProblemError(413, "batch_too_large", f"at most {runtime.settings.max_import_records} records",
                           field="records")
    records, errors = [], []
    for index, item in enumerate(raw):
        try:
            records.append(RegistryRecordIn.model_validate(item))
        except ValidationError as exc:
            errors += [{"index": index, "field": ".".join(str(p) for p in ("records", index, *e["loc"])),
                        "code": e["type"], "message": e["msg"]} for e in exc.errors(include_input=False)]
    if errors:
        raise _validation_problem(errors)
    async with runtime.db.transaction() as session:
        await _inside_area(session, officer, runtime.extras["keys"], records)
        result = await import_registry(session, runtime.settings, runtime.extras["keys"], records)
    return ImportOut(**result.__dict__)


async def _consent_holder(session: AsyncSession, recorder: Principal, ref: str, not_found: ProblemError) -> str:
    """Who may record or revoke a person's consent (docs/decisions/0014): staff of the person's area (a clerk
    of their sub-district, a registry officer of their district or the city); for a person the registry does
    not list yet, registry officers only. Anyone else gets `not_found`. Returns the registry status."""
    await lock_keys(session, LOCK_PERSON, [ref])  # one consent change of a person at a time
    person = await session.get(Person, ref)
    if person is None:
        if recorder.role != Role.registry_officer:
            raise not_found
        return WAITING_FOR_REGISTRY
    recorder.area.require(person.district_code, person.subdistrict_code, not_found)
    return LISTED


def _consent_out(consent: ConsentRecord, registry_status: str, rescreened: int = 0) -> ConsentOut:
    return ConsentOut(consent_id=str(consent.id), person_ref=consent.person_ref,
                      signed_on=consent.signed_on.isoformat(),
                      revoked_on=consent.revoked_on.isoformat() if consent.revoked_on else None,
                      registry_status=registry_status, sms_opt_out=consent.sms_opt_out, rescreened=rescreened)


async def _inside_area(session: AsyncSession, officer: Principal, keys: Keys,
                       records: list[RegistryRecordIn]) -> None:
    """A registry officer confined to a district imports only records of it, and only for persons the registry
    lists there or nowhere yet (a move between districts is for a city-wide officer): 403 otherwise, whole."""
    if officer.area.everywhere:
        return
    refs = [person_ref(keys.pepper, r.national_id) for r in records]
    current = dict((await session.execute(select(Person.person_ref, Person.district_code)
                                          .where(Person.person_ref.in_(refs)))).all())  # type: ignore[attr-defined]
    errors = [{"index": i, "field": f"records.{i}.district_code", "code": "outside_area",
               "message": "outside your area"}
              for i, (r, ref) in enumerate(zip(records, refs, strict=True))
              if not officer.area.contains(r.district_code, r.subdistrict_code)
              or not officer.area.contains(current.get(ref, r.district_code), r.subdistrict_code)]
    if errors:
        raise ProblemError(403, "outside_area", f"{len(errors)} record(s) outside your area; nothing was stored",
                           field=errors[0]["field"], errors=errors)


@router.post("/consents", status_code=201, response_model=ConsentOut,
             responses={200: {"description": "The same consent was already recorded (a retry): it is returned.",
                              "model": ConsentOut}})
async def record_consent(body: ConsentBody, request: Request, response: Response,
                         recorder: ConsentRecorder) -> ConsentOut:
    """Record a resident's signed informed consent; their parked settlements are screened again.

    Only for a person of the recorder's area; a consent for someone the registry does not list yet is recorded
    by registry officers only and shows `registry_status: waiting_for_registry` until the registry lists them.
    Recording the same consent again (same person and date, not revoked) returns the first one (200)."""
    runtime = _runtime(request)
    national_id = validate_national_id(body.national_id, field="national_id")
    keys: Keys = runtime.extras["keys"]
    ref = person_ref(keys.pepper, national_id)
    async with runtime.db.transaction() as session:
        status = await _consent_holder(session, recorder, ref, ProblemError(
            404, "person_not_found", "this person is not in the registry of your area", field="national_id"))
        existing = (await session.execute(select(ConsentRecord).where(
            ConsentRecord.person_ref == ref, ConsentRecord.signed_on == body.signed_on,
            ConsentRecord.revoked_on.is_(None)).limit(1))).scalar_one_or_none()  # type: ignore[union-attr]
        if existing is not None:
            response.status_code = 200
            return _consent_out(existing, status)
        consent, rescreened = await sign_consent(session, runtime.settings, keys, national_id, body.signed_on,
                                                 body.channel, recorder.subject, body.sms_opt_out)
    return _consent_out(consent, status, rescreened)


@router.post("/consents/{consent_id}/revoke", response_model=ConsentOut)
async def revoke(consent_id: UUID, body: RevokeIn, request: Request, recorder: ConsentRecorder) -> ConsentOut:
    """Revoke a consent from a date on (settlements discharged before it stay covered); who may, as for
    recording it. Outside your area the consent does not exist for you."""
    runtime = _runtime(request)
    not_found = ProblemError(404, "consent_not_found", "no such consent", field="consent_id")
    async with runtime.db.transaction() as session:
        ref = await session.scalar(select(ConsentRecord.person_ref).where(ConsentRecord.id == consent_id))
        if ref is None:
            raise not_found
        status = await _consent_holder(session, recorder, ref, not_found)
        consent = await revoke_consent(session, runtime.settings, runtime.extras["keys"], consent_id,
                                       body.revoked_on)
    return _consent_out(consent, status)


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    national_id: str = Field(min_length=1, max_length=64, description="Resident identity card number; full-width "
                             "digits are read as ASCII, any other form is a 422 invalid_national_id.")


LookupBody = Annotated[LookupIn, Body(openapi_examples={"a resident": {"value": {
    "national_id": "310110198001011236"}}})]

@router.post("/persons:lookup")
async def lookup_person(body: LookupBody, request: Request, reader: Reader) -> dict[str, Any]:
    """A person's registry entry, masked, with periods, consents and screenings (by national ID in the body,
    never in a URL, so it stays out of access logs). Only a person of the caller's area is found, and every
    answer is recorded in the append-only audit of personal-data reads."""
    runtime = _runtime(request)
    national_id = validate_national_id(body.national_id, field="national_id")
    keys: Keys = runtime.extras["keys"]
    ref = person_ref(keys.pepper, national_id)
    async with runtime.db.transaction() as session:
        person = await session.get(Person, ref)
        contact = await session.get(Contact, ref)
        not_found = ProblemError(404, "person_not_found", "this person is not in the registry of your area",
                                 field="national_id")
        if person is None:
            raise not_found
        reader.area.require(person.district_code, person.subdistrict_code, not_found)
        await record_reads(session, reader, "person_lookup", [ref], ("national_id", "name"))
        periods = (await session.execute(select(RegistryPeriod).where(RegistryPeriod.person_ref == ref))).scalars()
        consents = (await session.execute(select(ConsentRecord).where(ConsentRecord.person_ref == ref))).scalars()
        screenings = (await session.execute(select(Screening).where(Screening.person_ref == ref)
                                            .order_by(Screening.discharge_date))).scalars()
        return {
            "person_ref": ref,
            "national_id": mask_national_id(keys.at_rest.decrypt(person.national_id_enc, ref)),
            "name": mask_name(keys.at_rest.decrypt(person.name_enc, ref)),
            "district_code": person.district_code,
            "subdistrict_code": person.subdistrict_code,
            "bank_account": person.account_masked,
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


@router.get("/screenings/summary")
async def screening_summary(request: Request, reader: Reader,
                            parked_only: bool = Query(False)) -> dict[str, int]:
    """Screenings by reason (ops)."""
    runtime = _runtime(request)
    query = select(Screening.reason, func.count()).group_by(Screening.reason)
    if parked_only:
        query = query.where(Screening.parked)
    async with runtime.db.transaction() as session:
        return {reason: count for reason, count in (await session.execute(query)).all()}


class PolicyTermsOut(BaseModel):
    policy_id: str
    version: int
    region_code: str
    effective_from: str
    effective_to: str | None
    consent_lookback: Literal["calendar_year", "none"]
    published_at: str


@router.get("/policy-terms", response_model=list[PolicyTermsOut])
async def policy_terms(request: Request, reader: Reader,
                       region_code: str | None = Query(None, pattern=r"^[0-9]{6}$")) -> list[PolicyTermsOut]:
    """The policy versions screening knows (from policy.published) and the consent lookback each sets. A
    district and date no version covers are screened with the strict default, `none`."""
    query = select(PolicyTermsRecord).order_by(PolicyTermsRecord.region_code, PolicyTermsRecord.effective_from,
                                               PolicyTermsRecord.version)
    if region_code:
        query = query.where(PolicyTermsRecord.region_code == region_code)
    async with _runtime(request).db.transaction() as session:
        rows = (await session.execute(query)).scalars().all()
    return [PolicyTermsOut(policy_id=r.policy_id, version=r.version, region_code=r.region_code,
                           effective_from=r.effective_from.isoformat(),
                           effective_to=r.effective_to.isoformat() if r.effective_to else None,
                           consent_lookback=r.consent_lookback,  # type: ignore[arg-type]
                           published_at=r.published_at.isoformat()) for r in rows]
