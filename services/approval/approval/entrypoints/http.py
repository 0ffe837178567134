"""Clerks work their sub-district's queue; district reviewers their district's; ops see queue depth.

Thin: each route turns its input into a command for the case service or a query for `views`; domain errors
become problems in shared.problems.
"""

from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from approval.dependencies import ApprovalDeps
from approval.domain.case import Action, CaseState, RejectReason
from approval.domain.review import Flag
from approval.entrypoints import views
from approval.service_layer.cases import Act, CaseService
from approval.service_layer.unit_of_work import ApprovalUnitOfWork
from shared.contracts.types import HOSPITAL_ID_PATTERN, SUBDISTRICT_CODE_PATTERN, TEXT_PATTERN, IsoDate
from shared.pagination import Offset
from shared.problems import ProblemError
from shared.security.staff_auth import Principal, Role
from shared.service import Runtime, staff
from shared.unit_of_work import unit_of_work

router = APIRouter(prefix="/v1", tags=["cases"])
Reviewer = Annotated[Principal, Depends(staff(Role.clerk, Role.district_reviewer))]
Clerk = Annotated[Principal, Depends(staff(Role.clerk))]
Viewer = Annotated[Principal, Depends(staff(Role.clerk, Role.district_reviewer, Role.ops))]
Ops = Annotated[Principal, Depends(staff(Role.ops, Role.district_reviewer))]
Comment = Annotated[str, Field(max_length=500, pattern=TEXT_PATTERN)]


def _runtime(request: Request) -> Runtime[ApprovalDeps]:
    runtime: Runtime[ApprovalDeps] = request.app.state.runtime
    return runtime


def _service(runtime: Annotated[Runtime[ApprovalDeps], Depends(_runtime)]) -> CaseService:
    return CaseService(runtime.deps.rules, lambda: unit_of_work(runtime.db, ApprovalUnitOfWork))


RuntimeDep = Annotated[Runtime[ApprovalDeps], Depends(_runtime)]
Service = Annotated[CaseService, Depends(_service)]


class RejectIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: RejectReason
    comment: Comment | None = None


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: Comment | None = None


class SendBackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: Annotated[Comment, Field(min_length=1)]


class BatchApproveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_ids: list[UUID] = Field(min_length=1)
    comment: Comment | None = None


Sort = Literal["created_at", "-created_at", "amount", "-amount", "discharge_date", "-discharge_date"]


@router.get("/cases")
async def list_cases(
    runtime: RuntimeDep, viewer: Viewer,
    state: CaseState | None = Query(None, description="Default: the caller's own queue."),
    subdistrict_code: str | None = Query(None, pattern=SUBDISTRICT_CODE_PATTERN),
    hospital_id: str | None = Query(None, pattern=HOSPITAL_ID_PATTERN),
    discharged_from: IsoDate | None = Query(None), discharged_to: IsoDate | None = Query(None),
    amount_min: Decimal | None = Query(None, ge=0, le=999_999_999_999, decimal_places=2),
    amount_max: Decimal | None = Query(None, ge=0, le=999_999_999_999, decimal_places=2),
    flag: list[Flag] = Query([], description="Only cases carrying every one of these flags."),
    sort: Sort = Query("created_at", description="A field, oldest/smallest first; '-' for the reverse."),
    limit: int = Query(50, ge=1, le=500), offset: Offset = 0,
) -> dict[str, Any]:
    """Cases in the caller's area, filtered, sorted and paginated, each with its flags; `total` counts every
    match and `oldest_created_at` is the oldest match's arrival (the queue's age)."""
    query = views.CaseQuery(state, subdistrict_code, hospital_id, discharged_from, discharged_to, amount_min,
                            amount_max, flag, sort, limit, offset)
    return await views.list_cases(runtime.db, viewer, query, runtime.deps.review.rules)


@router.get("/cases/{case_id}")
async def get_case(case_id: UUID, runtime: RuntimeDep, viewer: Viewer) -> dict[str, Any]:
    """One case with its calculation (every figure) and its audit trail."""
    return await views.case_detail(runtime.db, case_id, viewer)


@router.get("/cases/{case_id}/review")
async def review_case(case_id: UUID, runtime: RuntimeDep, reviewer: Reviewer) -> dict[str, Any]:
    """The case as a reviewer needs it: who (name and masked national ID: this view is recorded), what care,
    why this amount (figures and plain words, Chinese and English), the person's year so far, and the flags."""
    return await views.review(runtime.db, case_id, reviewer, runtime.deps.review)


@router.get("/cases/{case_id}/personal-data-reads")
async def personal_data_reads(case_id: UUID, runtime: RuntimeDep, overseer: Ops) -> list[dict[str, Any]]:
    """Who read this case's person's name and national ID, when and why (district reviewers of its district,
    and ops): the rows `shared.security.read_audit` appended, oldest first."""
    return await views.personal_data_reads(runtime.db, case_id, overseer)


def _act(principal: Principal, case_id: UUID, action: Action, reason: str | None = None,
         comment: str | None = None) -> Act:
    return Act(case_id, action, principal.subject, principal.role, principal.area, reason, comment)


@router.post("/cases/{case_id}/approve")
async def approve(case_id: UUID, body: CommentIn, service: Service, reviewer: Reviewer) -> dict[str, Any]:
    """Approve: a clerk passes it to the district (or approves it outright under the threshold); a reviewer approves."""
    return views.case_out(await service.act(_act(reviewer, case_id, Action.APPROVE, comment=body.comment)))


@router.post("/cases/{case_id}/reject")
async def reject(case_id: UUID, body: RejectIn, service: Service, reviewer: Reviewer) -> dict[str, Any]:
    """Reject with a reason code (and a comment when the reason is `other`)."""
    command = _act(reviewer, case_id, Action.REJECT, reason=body.reason.value, comment=body.comment)
    return views.case_out(await service.act(command))


@router.post("/cases/{case_id}/send-back")
async def send_back(case_id: UUID, body: SendBackIn, service: Service,
                    reviewer: Annotated[Principal, Depends(staff(Role.district_reviewer))]) -> dict[str, Any]:
    """A district reviewer returns a case to the sub-district clerk, saying why."""
    return views.case_out(await service.act(_act(reviewer, case_id, Action.SEND_BACK, comment=body.comment)))


@router.post("/cases:batch-approve")
async def batch_approve(body: BatchApproveIn, runtime: RuntimeDep, service: Service, clerk: Clerk) -> dict[str, Any]:
    """A clerk approves many cases; each is its own transaction and gets its own result."""
    limit = runtime.deps.settings.max_batch_approve
    if len(body.case_ids) > limit:
        raise ProblemError(413, "batch_too_large", f"at most {limit} cases", field="case_ids")
    outcomes = await service.approve_batch(body.case_ids, clerk.subject, clerk.role, clerk.area,
                                           body.comment)
    results = [{"case_id": str(o.case_id), "ok": True, "state": o.case.state.value} if o.case else
               {"case_id": str(o.case_id), "ok": False, **({"code": o.error.code, "message": o.error.message}
                                                            if o.error else {})} for o in outcomes]
    return {"approved": sum(r["ok"] for r in results), "failed": sum(not r["ok"] for r in results),
            "results": results}


@router.get("/queues")
async def queues(runtime: RuntimeDep, ops: Ops) -> list[dict[str, Any]]:
    """Open cases per sub-district and state, with the oldest one's age."""
    return await views.queue_depth(runtime.db, ops.area)
