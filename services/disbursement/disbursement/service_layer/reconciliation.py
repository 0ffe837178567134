"""Daily reconciliation: per district and approval day, approved = settled + in flight + failed + cancelled
(`domain.reconciliation`), and who may ask for which district."""

from datetime import date
from typing import Any

from disbursement.domain.reconciliation import DayTally, Tally
from disbursement.service_layer.unit_of_work import DisbursementUnitOfWork
from shared.errors import Forbidden
from shared.security.area import Area


def district_asked(area: Area, district_code: str | None) -> str | None:
    """The district a list is confined to: the caller's own, or the one asked for when the caller is not
    confined. Asking for another district than your own is refused (not hidden: the caller knows it exists)."""
    if district_code and not area.contains(district_code, area.subdistrict_code):
        raise Forbidden("forbidden_district", "outside your district", field="district_code")
    return area.district_code or district_code


def _tally(t: Tally) -> dict[str, Any]:
    return {"count": t.count, "amount": f"{t.amount:.2f}"}


def day_out(day: DayTally) -> dict[str, Any]:
    return {"district_code": day.district_code, "day": day.day.isoformat(), "approved": _tally(day.approved),
            "settled": _tally(day.settled), "in_flight": _tally(day.in_flight), "failed": _tally(day.failed),
            "cancelled": _tally(day.cancelled), "difference": f"{day.difference:.2f}", "alarm": day.alarm}


async def reconcile(uow: DisbursementUnitOfWork, area: Area, *, day: date | None = None,
                    district_code: str | None = None) -> list[dict[str, Any]]:
    """One row per district and approval day in the caller's area; `alarm` when the parts do not add up."""
    return [day_out(d) for d in await uow.payments.tally(day=day, district=district_asked(area, district_code))]
