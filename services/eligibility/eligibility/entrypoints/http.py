"""Registry officers import the registry; counter clerks and officers record consents; ops read screenings."""

import csv
import io
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from eligibility.dependencies import EligibilityDeps
from eligibility.domain.registry import CSV_COLUMNS, ConsentIn, RegistryRecordIn, RevokeIn
from eligibility.entrypoints import views
from eligibility.service_layer.registry import (
    ConsentResult,
    RegistryStatus,
    import_registry,
    revoke_consent,
    sign_consent,
)
from eligibility.service_layer.unit_of_work import EligibilityUnitOfWork
from shared.contracts.openapi import inline_schema, request_body
from shared.contracts.types import ConsentLookback
from shared.errors import NotFound
from shared.problems import ProblemError, validated_items
from shared.request_guard import parsed_json
from shared.security.crypto import person_ref
from shared.security.national_id import validate_national_id
from shared.security.staff_auth import Principal, Role
from shared.service import Runtime, staff
from shared.unit_of_work import unit_of_work

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


class ConsentOut(BaseModel):
    consent_id: str
    person_ref: str
    signed_on: str
    revoked_on: str | None
    registry_status: RegistryStatus = Field(
        description="waiting_for_registry: the registry does not list the person yet; screening starts when it does.")
    sms_opt_out: bool = False
    rescreened: int = 0


def _runtime(request: Request) -> Runtime[EligibilityDeps]:
    runtime: Runtime[EligibilityDeps] = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime[EligibilityDeps], Depends(_runtime)]


def _validated_records(raw: list[Any]) -> list[RegistryRecordIn]:
    """Every record valid, or one problem naming every invalid record by its index (validated in one call)."""
    return validated_items(RegistryRecordIn, raw, field="records", noun="record", whole="the import")


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
    records: list[dict[str, Any]] = payload["records"]
    return records


@router.post("/registry/import", response_model=ImportOut, openapi_extra=request_body({
    "application/json": {"type": "object", "additionalProperties": False, "required": ["records"],
                         "properties": {"records": {"type": "array", "items": inline_schema(RegistryRecordIn)}}},
    "text/csv": {"type": "string", "description": f"header: {','.join(CSV_COLUMNS)}"}}, examples={
    "application/json": {"records": [RECORD_EXAMPLE]},
    "text/csv": ",".join(CSV_COLUMNS) + "\n" + ",".join(str(RECORD_EXAMPLE[c] or "") for c in CSV_COLUMNS) + "\n"}))
async def import_records(request: Request, runtime: RuntimeDep, officer: RegistryOfficer) -> ImportOut:
    """Import or update registry records (JSON or CSV). All records are valid and stored, or none."""
    raw = await _records(request)
    if not raw:
        raise ProblemError(422, "invalid_input", "no records", field="records")
    limit = runtime.deps.settings.max_import_records
    if len(raw) > limit:
        raise ProblemError(413, "batch_too_large", f"at most {limit} records", field="records")
    records = _validated_records(raw)
    async with unit_of_work(runtime.db, EligibilityUnitOfWork) as uow:
        result = await import_registry(uow, runtime.deps.keys, officer, records)
    return ImportOut(**result.__dict__)


def _consent_out(result: ConsentResult) -> ConsentOut:
    consent = result.consent
    return ConsentOut(consent_id=str(consent.id), person_ref=consent.person_ref,
                      signed_on=consent.signed_on.isoformat(),
                      revoked_on=consent.revoked_on.isoformat() if consent.revoked_on else None,
                      registry_status=result.registry_status, sms_opt_out=consent.sms_opt_out,
                      rescreened=result.rescreened)


@router.post("/consents", status_code=201, response_model=ConsentOut,
             responses={200: {"description": "The same consent was already recorded (a retry): it is returned.",
                              "model": ConsentOut}})
async def record_consent(body: ConsentBody, runtime: RuntimeDep, response: Response,
                         recorder: ConsentRecorder) -> ConsentOut:
    """Record a resident's signed informed consent; their parked settlements are screened again.

    Only for a person of the recorder's area; a consent for someone the registry does not list yet is recorded
    by registry officers only and shows `registry_status: waiting_for_registry` until the registry lists them.
    Recording the same consent again (same person and date, not revoked) returns the first one (200)."""
    national_id = validate_national_id(body.national_id, field="national_id")
    async with unit_of_work(runtime.db, EligibilityUnitOfWork) as uow:
        result = await sign_consent(uow, runtime.deps.keys, recorder, national_id, body.signed_on, body.channel,
                                    body.sms_opt_out)
    if not result.recorded:
        response.status_code = 200
    return _consent_out(result)


@router.post("/consents/{consent_id}/revoke", response_model=ConsentOut)
async def revoke(consent_id: UUID, body: RevokeIn, runtime: RuntimeDep, recorder: ConsentRecorder) -> ConsentOut:
    """Revoke a consent from a date on (settlements discharged before it stay covered); who may, as for
    recording it. Outside your area the consent does not exist for you."""
    async with unit_of_work(runtime.db, EligibilityUnitOfWork) as uow:
        result = await revoke_consent(uow, runtime.deps.keys, recorder, consent_id, body.revoked_on)
    return _consent_out(result)


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    national_id: str = Field(min_length=1, max_length=64, description="Resident identity card number; full-width "
                             "digits are read as ASCII, any other form is a 422 invalid_national_id.")


LookupBody = Annotated[LookupIn, Body(openapi_examples={"a resident": {"value": {
    "national_id": "310110198001011236"}}})]

@router.post("/persons:lookup")
async def lookup_person(body: LookupBody, runtime: RuntimeDep, reader: Reader) -> dict[str, Any]:
    """A person's registry entry, masked, with periods, consents and screenings (by national ID in the body,
    never in a URL, so it stays out of access logs). Only a person of the caller's area is found, and every
    answer is recorded in the append-only audit of personal-data reads."""
    national_id = validate_national_id(body.national_id, field="national_id")
    keys = runtime.deps.keys
    found = await views.person(runtime.db, keys, reader, person_ref(keys.pepper, national_id))
    if found is None:
        raise NotFound("person_not_found", "this person is not in the registry of your area", field="national_id")
    return found


@router.get("/screenings/summary")
async def screening_summary(runtime: RuntimeDep, reader: Reader, parked_only: bool = Query(False)) -> dict[str, int]:
    """Screenings by reason (ops)."""
    return await views.screenings_by_reason(runtime.db, parked_only)


class PolicyTermsOut(BaseModel):
    policy_id: str
    version: int
    region_code: str
    effective_from: str
    effective_to: str | None
    consent_lookback: ConsentLookback
    published_at: str


@router.get("/policy-terms", response_model=list[PolicyTermsOut])
async def policy_terms(runtime: RuntimeDep, reader: Reader,
                       region_code: str | None = Query(None, pattern=r"^[0-9]{6}$")) -> list[PolicyTermsOut]:
    """The policy versions screening knows (from policy.published) and the consent lookback each sets. A
    district and date no version covers are screened with the strict default, `none`."""
    return [PolicyTermsOut(policy_id=r.policy_id, version=r.version, region_code=r.region_code,
                           effective_from=r.effective_from.isoformat(),
                           effective_to=r.effective_to.isoformat() if r.effective_to else None,
                           consent_lookback=ConsentLookback(r.consent_lookback),
                           published_at=r.published_at.isoformat())
            for r in await views.policy_terms(runtime.db, region_code)]
