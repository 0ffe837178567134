"""Policies (policy administrators), calculations with their explanation, recoveries and ledgers."""

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from calculation.adapters.tables import Calculation, Ledger, PolicyRecord, Recovery
from calculation.domain.policy import Policy
from calculation.service_layer.assess import assess_waiting
from calculation.service_layer.policies import announce_policies, publish_policy
from shared.contracts.events import AssistanceFigures
from shared.contracts.openapi import request_body
from shared.contracts.types import PERSON_REF_PATTERN, Category, Money
from shared.pagination import Offset
from shared.problems import ProblemError
from shared.security.staff_auth import Principal, Role
from shared.service import Runtime, staff

router = APIRouter(prefix="/v1", tags=["calculation"])
PolicyAdmin = Annotated[Principal, Depends(staff(Role.policy_admin))]
Reader = Annotated[Principal, Depends(staff(Role.policy_admin, Role.clerk, Role.district_reviewer, Role.ops))]
PersonRef = Annotated[str, Path(pattern=PERSON_REF_PATTERN)]
DistrictStaff = Annotated[Principal, Depends(staff(Role.district_reviewer, Role.ops))]
POLICY_EXAMPLE = {
    "policy_id": "yangpu-310110", "version": 2, "region_code": "310110", "effective_from": "2027-01-01",
    "effective_to": None, "categories": {"extreme_poverty": {
        "deductible": "0.00", "cap": "80000.00", "per_settlement_cap": None,
        "ratios": {"inpatient": {"default": "1.00"}, "outpatient_chronic": {"default": "0.90"},
                   "outpatient": {"default": "0.80", "1": "0.85"}}}},
}


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


@router.get("/policies")
async def list_policies(request: Request, reader: Reader) -> list[dict[str, Any]]:
    """Every published policy version."""
    async with _runtime(request).db.transaction() as session:
        rows = (await session.execute(select(PolicyRecord).order_by(PolicyRecord.policy_id,
                                                                    PolicyRecord.version))).scalars()
        return [{**r.document, "published_by": r.published_by, "published_at": r.published_at.isoformat()}
                for r in rows]


@router.post("/policies", status_code=201, openapi_extra=request_body({"application/json": Policy},
                                                                       examples={"application/json": POLICY_EXAMPLE}))
async def publish(request: Request, admin: PolicyAdmin) -> dict[str, Any]:
    """Publish a new policy version (region, effective dates, per-category parameters).

    Settlements of the region that were waiting for a policy (`no_policy`) and that it covers are calculated in
    the same transaction; `waiting_calculated` says how many."""
    try:
        policy = Policy.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "code": e["type"], "message": e["msg"]}
                  for e in exc.errors(include_input=False)]
        raise ProblemError(422, "invalid_policy", "the policy document is invalid", field=errors[0]["field"] or None,
                           errors=errors) from None
    runtime = _runtime(request)
    async with runtime.db.transaction() as session:
        await publish_policy(session, policy, admin.subject)
        await announce_policies(session, runtime.settings)
        waiting = await assess_waiting(session, runtime.settings, policy)
    return {"policy_id": policy.policy_id, "version": policy.version, "waiting_calculated": waiting}


class CalculationOut(BaseModel):
    """One settlement's calculation. The figures carry the names AssistanceCalculated and approval's case use."""

    calculation_id: UUID
    settlement_id: UUID
    person_ref: str
    status: Literal["calculated", "no_policy", "approved", "rejected", "cancelled", "paid", "reversed"]
    year: int
    category: Category
    district_code: str
    subdistrict_code: str
    policy_id: str | None = Field(description="null while no policy covers the settlement (status no_policy).")
    policy_version: int | None
    assistance: Money
    released: bool = Field(description="The deductible and assistance went back to the ledger (rejected, "
                                       "cancelled, or reversed before payment).")
    figures: AssistanceFigures | None = Field(description="null while status is no_policy.")
    explanation: list[str]


@router.get("/calculations/{settlement_id}", response_model=CalculationOut)
async def get_calculation(settlement_id: UUID, request: Request, reader: Reader) -> CalculationOut:
    """The assistance for one settlement with every intermediate figure, and why."""
    async with _runtime(request).db.transaction() as session:
        calc = (await session.execute(select(Calculation).where(Calculation.settlement_id == settlement_id))
                ).scalar_one_or_none()
    not_found = ProblemError(404, "calculation_not_found", "no such calculation", field="settlement_id")
    if calc is None:
        raise not_found
    reader.area.require(calc.district_code, calc.subdistrict_code, not_found)
    figures = None if calc.figures is None else AssistanceFigures.model_validate(calc.figures)
    return CalculationOut(
        calculation_id=calc.id, settlement_id=calc.settlement_id, person_ref=calc.person_ref,
        status=calc.status,  # type: ignore[arg-type]
        year=calc.year, category=Category(calc.category), district_code=calc.district_code,
        subdistrict_code=calc.subdistrict_code, policy_id=calc.policy_id, policy_version=calc.policy_version,
        assistance=calc.assistance, released=calc.released, figures=figures, explanation=explain_figures(figures))


def explain_figures(f: AssistanceFigures | None) -> list[str]:
    """Human-readable lines from the figures (what a clerk reads)."""
    if f is None:
        return ["no policy covered this settlement's region and date"]
    lines = [f"base = max(0, policy scope {f.policy_scope_amount:.2f} - basic insurance {f.basic_insurance_paid:.2f}"
             f" - critical illness {f.critical_illness_paid:.2f}) = {f.base:.2f}",
             f"deductible left this year = {f.deductible_left:.2f}, applied = {f.deductible_applied:.2f}",
             f"ratio = {f.ratio}; amount = round_half_up((base - deductible applied) x ratio) = "
             f"{f.amount_before_caps:.2f}"]
    if f.per_settlement_cap is not None:
        lines.append(f"per-settlement cap {f.per_settlement_cap:.2f} -> {f.amount_after_settlement_cap:.2f}")
    lines.append(f"annual cap {f.cap:.2f}, already committed {f.committed_before:.2f}, "
                 f"left {f.cap_left:.2f} -> assistance {f.assistance:.2f}")
    return lines


@router.get("/recoveries")
async def list_recoveries(request: Request, staff_member: DistrictStaff,
                          status: str = Query("open", pattern=r"^[a-z_]{1,16}$"),
                          limit: int = Query(100, ge=1, le=1000),
                          offset: Offset = 0) -> list[dict[str, Any]]:
    """Money paid for settlements later reversed, for the district to recover."""
    query = select(Recovery).where(Recovery.status == status, *staff_member.area.where(Recovery.district_code))
    async with _runtime(request).db.transaction() as session:
        rows = (await session.execute(query.order_by(Recovery.created_at).limit(limit).offset(offset))).scalars()
        return [{"recovery_id": str(r.id), "settlement_id": str(r.settlement_id), "person_ref": r.person_ref,
                 "district_code": r.district_code, "amount": f"{r.amount:.2f}", "status": r.status,
                 "created_at": r.created_at.isoformat()} for r in rows]


@router.get("/ledgers/{person_ref}")
async def person_ledger(person_ref: PersonRef, request: Request, reader: Reader) -> list[dict[str, Any]]:
    """A person's deductible used and assistance committed, per year.

    Staff confined to an area see the ledger of a person whose latest calculation is in their area; for anyone
    else the person does not exist (404), as for a pseudonym nobody has."""
    async with _runtime(request).db.transaction() as session:
        if not reader.area.everywhere:
            latest = (await session.execute(
                select(Calculation.district_code, Calculation.subdistrict_code)
                .where(Calculation.person_ref == person_ref)
                .order_by(Calculation.created_at.desc()).limit(1))).first()  # type: ignore[attr-defined]
            reader.area.require(latest[0] if latest else None, latest[1] if latest else None,
                                ProblemError(404, "person_not_found", "no such person in your area",
                                             field="person_ref"))
        rows = (await session.execute(select(Ledger).where(Ledger.person_ref == person_ref)
                                      .order_by(Ledger.year))).scalars()
        return [{"year": r.year, "deductible_used": f"{r.deductible_used:.2f}", "committed": f"{r.committed:.2f}"}
                for r in rows]
