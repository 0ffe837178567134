"""Daily reconciliation: per district and approval day, approved = settled + in flight + failed + cancelled."""

from datetime import date
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from disbursement.adapters.tables import Payment
from disbursement.domain.payment import IN_FLIGHT, PaymentStatus


async def reconcile(session: AsyncSession, day: date | None = None, district: str | None = None,
                    since: date | None = None) -> list[dict[str, Any]]:
    """One row per district and approval day; `alarm` when the parts do not add up to what was approved."""
    in_flight = [s.value for s in IN_FLIGHT]

    def amount_when(*statuses: str) -> Any:
        return func.coalesce(func.sum(case((Payment.status.in_(statuses), Payment.amount), else_=0)), 0)  # type: ignore[attr-defined]

    def count_when(*statuses: str) -> Any:
        return func.count(case((Payment.status.in_(statuses), 1)))  # type: ignore[attr-defined]

    query = select(
        Payment.district_code, Payment.approved_on, func.count(), func.sum(Payment.amount),
        count_when(PaymentStatus.SETTLED.value), amount_when(PaymentStatus.SETTLED.value),
        count_when(*in_flight), amount_when(*in_flight),
        count_when(PaymentStatus.FAILED.value), amount_when(PaymentStatus.FAILED.value),
        count_when(PaymentStatus.CANCELLED.value), amount_when(PaymentStatus.CANCELLED.value),
    ).group_by(Payment.district_code, Payment.approved_on).order_by(Payment.approved_on, Payment.district_code)
    if day:
        query = query.where(Payment.approved_on == day)
    if since:
        query = query.where(Payment.approved_on >= since)
    if district:
        query = query.where(Payment.district_code == district)
    rows = (await session.execute(query)).all()
    out = []
    for d, on, n, total, sn, sa, fn, fa, xn, xa, cn, ca in rows:
        difference = total - sa - fa - xa - ca
        out.append({"district_code": d, "day": on.isoformat(),
                    "approved": {"count": n, "amount": f"{total:.2f}"},
                    "settled": {"count": sn, "amount": f"{sa:.2f}"},
                    "in_flight": {"count": fn, "amount": f"{fa:.2f}"},
                    "failed": {"count": xn, "amount": f"{xa:.2f}"},
                    "cancelled": {"count": cn, "amount": f"{ca:.2f}"},
                    "difference": f"{difference:.2f}", "alarm": difference != 0 or n != sn + fn + xn + cn})
    return out
