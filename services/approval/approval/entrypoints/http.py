"""Clerks work their sub-district's queue; district reviewers their district's; ops see queue depth."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from approval.adapters.flags import flag_conditions
from approval.adapters.tables import AuditRecord, CaseRecord
from approval.domain.case import Action, CaseState, RejectReason
from approval.domain.case import Role as CaseRole
from approval.domain.review import Flag
from approval.service_layer.cases import act_on_case
from approval.service_layer.queues import queue_depth
from approval.service_layer.review import ReviewContext, case_review
from shared.contracts.types import HOSPITAL_ID_PATTERN, SUBDISTRICT_CODE_PATTERN, TEXT_PATTERN, IsoDate
from shared.pagination import Offset
from shared.problems import ProblemError
from shared.security.read_audit import READ_AUDIT
from shared.security.staff_auth import Principal, Role
from shared.service import Runtime, staff

router = APIRouter(prefix="/v1", tags=["cases"])
Reviewer = Annotated[Principal, Depends(staff(Role.clerk, Role.district_reviewer))]
Clerk = Annotated[Principal, Depends(staff(Role.clerk))]
Viewer = Annotated[Principal, Depends(staff(Role.clerk, Role.district_reviewer, Role.ops))]
Ops = Annotated[Principal, Depends(staff(Role.ops, Role.district_reviewer))]
Comment = Annotated[str, Field(max_length=500, pattern=TEXT_PATTERN)]


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


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _case_out(c: CaseRecord, audit: list[AuditRecord] | None = None, flags: list[str] | None = None
              ) -> dict[str, Any]:
    out = {
        "case_id": str(c.id), "settlement_id": str(c.settlement_id), "calculation_id": str(c.calculation_id),
        "person_ref": c.person_ref, "hospital_id": c.hospital_id, "district_code": c.district_code,
        "subdistrict_code": c.subdistrict_code, "category": c.category,
        "discharge_date": c.discharge_date.isoformat(), "amount": f"{c.amount:.2f}", "state": c.state,
        "payment_status": c.payment_status,
        "recovery": None if c.recovery_id is None else {
            "recovery_id": str(c.recovery_id), "amount": f"{c.recovery_amount:.2f}",
            "opened_at": c.recovery_opened_at.isoformat() if c.recovery_opened_at else None},
        "created_at": c.created_at.isoformat(),
        "updated_at": c.updated_at.isoformat(),
    }
    if flags is not None:
        out["flags"] = flags
    if audit is not None:
        calc = c.calculation  # the AssistanceCalculated payload the case was opened from
        out["calculation"] = {k: calc[k] for k in ("year", "policy_id", "policy_version", "figures")}
        out["audit"] = [{"actor": a.actor, "role": a.role, "action": a.action, "from_state": a.from_state,
                         "to_state": a.to_state, "reason": a.reason, "comment": a.comment,
                         "at": a.at.isoformat()} for a in audit]
    return out


def _case_role(principal: Principal) -> CaseRole:
    return CaseRole.CLERK if principal.role == Role.clerk else CaseRole.DISTRICT_REVIEWER


SORTS = {"created_at": CaseRecord.created_at, "amount": CaseRecord.amount, "discharge_date": CaseRecord.discharge_date}
Sort = Literal["created_at", "-created_at", "amount", "-amount", "discharge_date", "-discharge_date"]


@router.get("/cases")
async def list_cases(
    request: Request, viewer: Viewer,
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
    if state is None and viewer.role in (Role.clerk, Role.district_reviewer):
        state = CaseState.AWAITING_SUBDISTRICT if viewer.role == Role.clerk else CaseState.AWAITING_DISTRICT
    conditions = viewer.area.where(CaseRecord.district_code, CaseRecord.subdistrict_code)
    if state:
        conditions.append(CaseRecord.state == state.value)
    if subdistrict_code:
        conditions.append(CaseRecord.subdistrict_code == subdistrict_code)
    if hospital_id:
        conditions.append(CaseRecord.hospital_id == hospital_id)
    if discharged_from:
        conditions.append(CaseRecord.discharge_date >= discharged_from)
    if discharged_to:
        conditions.append(CaseRecord.discharge_date <= discharged_to)
    if amount_min is not None:
        conditions.append(CaseRecord.amount >= amount_min)
    if amount_max is not None:
        conditions.append(CaseRecord.amount <= amount_max)
    flags = flag_conditions(_review(request).rules, datetime.now(UTC))
    conditions += [flags[f] for f in flag]
    column = SORTS[sort.lstrip("-")]
    order = (column.desc(), CaseRecord.id.desc()) if sort.startswith("-") else (column, CaseRecord.id)  # type: ignore[attr-defined]
    async with _runtime(request).db.transaction() as session:
        total, oldest = (await session.execute(select(func.count(), func.min(CaseRecord.created_at))
                                               .select_from(CaseRecord).where(*conditions))).one()
        rows = (await session.execute(select(CaseRecord, *[c.label(f.value) for f, c in flags.items()])
                                      .where(*conditions).order_by(*order).limit(limit).offset(offset))).all()
        items = [_case_out(row[0], flags=[f.value for f in flags if getattr(row, f.value)]) for row in rows]
        return {"total": total, "limit": limit, "offset": offset,
                "oldest_created_at": oldest.isoformat() if oldest else None, "items": items}


def _review(request: Request) -> ReviewContext:
    return _runtime(request).extras["review"]  # type: ignore[no-any-return]


async def _case_in_area(session: AsyncSession, case_id: UUID, viewer: Principal) -> CaseRecord:
    case = await session.get(CaseRecord, case_id)
    not_found = ProblemError(404, "case_not_found", "no such case in your area", field="case_id")
    if case is None:
        raise not_found
    viewer.area.require(case.district_code, case.subdistrict_code, not_found)
    return case


@router.get("/cases/{case_id}")
async def get_case(case_id: UUID, request: Request, viewer: Viewer) -> dict[str, Any]:
    """One case with its calculation (every figure) and its audit trail."""
    async with _runtime(request).db.transaction() as session:
        case = await _case_in_area(session, case_id, viewer)
        audit = list((await session.execute(select(AuditRecord).where(AuditRecord.case_id == case_id)
                                            .order_by(AuditRecord.id))).scalars())
        return _case_out(case, audit)


@router.get("/cases/{case_id}/review")
async def review_case(case_id: UUID, request: Request, reviewer: Reviewer) -> dict[str, Any]:
    """The case as a reviewer needs it: who (name and masked national ID: this view is recorded), what care,
    why this amount (figures and plain words, Chinese and English), the person's year so far, and the flags."""
    async with _runtime(request).db.transaction() as session:
        case = await _case_in_area(session, case_id, reviewer)
        audit = list((await session.execute(select(AuditRecord).where(AuditRecord.case_id == case_id)
                                            .order_by(AuditRecord.id))).scalars())
        return {"case": _case_out(case, audit), **await case_review(session, case, reviewer, _review(request))}


@router.get("/cases/{case_id}/personal-data-reads")
async def personal_data_reads(case_id: UUID, request: Request, overseer: Ops) -> list[dict[str, Any]]:
    """Who read this case's person's name and national ID, when and why (district reviewers of its district,
    and ops): the rows `shared.security.read_audit` appended, oldest first."""
    async with _runtime(request).db.transaction() as session:
        case = await _case_in_area(session, case_id, overseer)
        rows = (await session.execute(select(READ_AUDIT).where(READ_AUDIT.c.person_ref == case.person_ref)
                                      .order_by(READ_AUDIT.c.id))).all()
        return [{"actor": r.actor, "role": r.role, "purpose": r.purpose, "fields": r.fields.split(","),
                 "at": r.at.isoformat()} for r in rows]


async def _act(request: Request, principal: Principal, case_id: UUID, action: Action,
               reason: str | None = None, comment: str | None = None) -> dict[str, Any]:
    runtime = _runtime(request)
    async with runtime.db.transaction() as session:
        case = await act_on_case(session, runtime.settings, runtime.extras["policy"], case_id, action,
                                 principal.subject, _case_role(principal), principal.area, reason, comment)
    return _case_out(case)


@router.post("/cases/{case_id}/approve")
async def approve(case_id: UUID, body: CommentIn, request: Request, reviewer: Reviewer) -> dict[str, Any]:
    """Approve: a clerk passes it to the district (or approves it outright under the threshold); a reviewer approves."""
    return await _act(request, reviewer, case_id, Action.APPROVE, comment=body.comment)


@router.post("/cases/{case_id}/reject")
async def reject(case_id: UUID, body: RejectIn, request: Request, reviewer: Reviewer) -> dict[str, Any]:
    """Reject with a reason code (and a comment when the reason is `other`)."""
    return await _act(request, reviewer, case_id, Action.REJECT, reason=body.reason.value, comment=body.comment)


@router.post("/cases/{case_id}/send-back")
async def send_back(case_id: UUID, body: SendBackIn, request: Request,
                    reviewer: Annotated[Principal, Depends(staff(Role.district_reviewer))]) -> dict[str, Any]:
    """A district reviewer returns a case to the sub-district clerk, saying why."""
    return await _act(request, reviewer, case_id, Action.SEND_BACK, comment=body.comment)


@router.post("/cases:batch-approve")
async def batch_approve(body: BatchApproveIn, request: Request, clerk: Clerk) -> dict[str, Any]:
    """A clerk approves many cases; each is its own transaction and gets its own result."""
    runtime = _runtime(request)
    if len(body.case_ids) > runtime.settings.max_batch_approve:
        raise ProblemError(413, "batch_too_large", f"at most {runtime.settings.max_batch_approve} cases",
                           field="case_ids")
    results = []
    for case_id in dict.fromkeys(body.case_ids):
        try:
            case = await _act(request, clerk, case_id, Action.APPROVE, comment=body.comment)
            results.append({"case_id": str(case_id), "ok": True, "state": case["state"]})
        except ProblemError as exc:
            results.append({"case_id": str(case_id), "ok": False, "code": exc.code, "message": exc.message})
    return {"approved": sum(r["ok"] for r in results), "failed": sum(not r["ok"] for r in results),
            "results": results}


@router.get("/queues")
async def queues(request: Request, ops: Ops) -> list[dict[str, Any]]:
    """Open cases per sub-district and state, with the oldest one's age."""
    async with _runtime(request).db.transaction() as session:
        return await queue_depth(session, ops.district_code if ops.role == Role.district_reviewer else None)
