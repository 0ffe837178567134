"""Policies (policy administrators), calculations with their explanation, recoveries and ledgers."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field, ValidationError

from calculation.dependencies import CalculationDeps
from calculation.domain.calculation import CalculationStatus
from calculation.domain.policy import Policy
from calculation.entrypoints import views
from calculation.service_layer.policies import publish_policy
from calculation.service_layer.unit_of_work import CalculationUnitOfWork
from shared.contracts.events import AssistanceFigures
from shared.contracts.openapi import request_body
from shared.contracts.types import PERSON_REF_PATTERN, Category, Money
from shared.errors import Invalid, NotFound
from shared.pagination import Offset
from shared.security.staff_auth import Principal, Role
from shared.service import Runtime, staff
from shared.unit_of_work import unit_of_work

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


def _runtime(request: Request) -> Runtime[CalculationDeps]:
    runtime: Runtime[CalculationDeps] = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime[CalculationDeps], Depends(_runtime)]


@router.get("/policies")
async def list_policies(runtime: RuntimeDep, reader: Reader) -> list[dict[str, Any]]:
    """Every published policy version."""
    return await views.policies(runtime.db)


@router.post("/policies", status_code=201, openapi_extra=request_body({"application/json": Policy},
                                                                       examples={"application/json": POLICY_EXAMPLE}))
async def publish(request: Request, runtime: RuntimeDep, admin: PolicyAdmin) -> dict[str, Any]:
    """Publish a new policy version (region, effective dates, per-category parameters).

    Settlements of the region that were waiting for a policy (`no_policy`) and that it covers are calculated in
    the same transaction; `waiting_calculated` says how many."""
    try:
        policy = Policy.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]), "code": e["type"], "message": e["msg"]}
                  for e in exc.errors(include_input=False)]
        raise Invalid("invalid_policy", "the policy document is invalid", field=errors[0]["field"] or None,
                      errors=errors) from None
    async with unit_of_work(runtime.db, CalculationUnitOfWork) as uow:
        waiting = await publish_policy(uow, policy, admin.subject)
    return {"policy_id": policy.policy_id, "version": policy.version, "waiting_calculated": waiting}


class CalculationOut(BaseModel):
    """One settlement's calculation. The figures carry the names AssistanceCalculated and approval's case use."""

    calculation_id: UUID
    settlement_id: UUID
    person_ref: str
    status: CalculationStatus
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
async def get_calculation(settlement_id: UUID, runtime: RuntimeDep, reader: Reader) -> CalculationOut:
    """The assistance for one settlement with every intermediate figure, and why."""
    calc = await views.calculation(runtime.db, reader.area, settlement_id)
    if calc is None:
        raise NotFound("calculation_not_found", "no such calculation", field="settlement_id")
    figures = None if calc.figures is None else AssistanceFigures.model_validate(calc.figures)
    return CalculationOut(
        calculation_id=calc.id, settlement_id=calc.settlement_id, person_ref=calc.person_ref,
        status=CalculationStatus(calc.status), year=calc.year, category=Category(calc.category),
        district_code=calc.district_code, subdistrict_code=calc.subdistrict_code, policy_id=calc.policy_id,
        policy_version=calc.policy_version, assistance=calc.assistance, released=calc.released, figures=figures,
        explanation=explain_figures(figures))


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
async def list_recoveries(runtime: RuntimeDep, staff_member: DistrictStaff,
                          status: str = Query("open", pattern=r"^[a-z_]{1,16}$"),
                          limit: int = Query(100, ge=1, le=1000),
                          offset: Offset = 0) -> list[dict[str, Any]]:
    """Money paid for settlements later reversed, for the district to recover."""
    return await views.recoveries(runtime.db, status, staff_member.area, limit, offset)


@router.get("/ledgers/{person_ref}")
async def person_ledger(person_ref: PersonRef, runtime: RuntimeDep, reader: Reader) -> list[dict[str, Any]]:
    """A person's deductible used and assistance committed, per year.

    Staff confined to an area see the ledger of a person whose latest calculation is in their area; for anyone
    else the person does not exist (404), as for a pseudonym nobody has."""
    found = await views.ledgers(runtime.db, reader.area, person_ref)
    if found is None:
        raise NotFound("person_not_found", "no such person in your area", field="person_ref")
    return found
