"""The daily identity: per district and approval day, approved = settled + in flight + failed + cancelled."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class Tally:
    count: int
    amount: Decimal


@dataclass(frozen=True)
class DayTally:
    """The payments of one district and approval day, by part of the identity."""

    district_code: str
    day: date
    approved: Tally
    settled: Tally
    in_flight: Tally
    failed: Tally
    cancelled: Tally

    @property
    def parts(self) -> tuple[Tally, Tally, Tally, Tally]:
        return self.settled, self.in_flight, self.failed, self.cancelled

    @property
    def difference(self) -> Decimal:
        """What was approved and is in none of the parts (zero when the books balance)."""
        return self.approved.amount - sum((p.amount for p in self.parts), start=Decimal(0))

    @property
    def alarm(self) -> bool:
        """Any gap, in amount or in count, is an alarm."""
        return self.difference != 0 or self.approved.count != sum(p.count for p in self.parts)
