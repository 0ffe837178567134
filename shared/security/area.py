"""Who may see whom: the one area rule every endpoint that returns or changes a person's data applies.

A clerk works one sub-district, a district reviewer one district; a registry officer is confined to the district
(and sub-district) their token names, or works city-wide without such claims; policy administrators and
operations staff are not confined. Outside your area a person, case, payment or recovery does not exist for you:
the answer is the same 404 as for an id nobody has (nothing leaks about whether it exists).
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import false

from shared.errors import NotFound


@dataclass(frozen=True)
class Area:
    """A district and optionally one of its sub-districts; None confines nothing at that level."""

    district_code: str | None = None
    subdistrict_code: str | None = None

    @property
    def everywhere(self) -> bool:
        return self.district_code is None and self.subdistrict_code is None

    def contains(self, district_code: str | None, subdistrict_code: str | None = None) -> bool:
        """Whether a person (or case, payment, ...) of that district and sub-district is inside the area.

        Something whose district (or sub-district) is unknown is inside only an area that does not confine it.
        """
        if self.district_code is not None and district_code != self.district_code:
            return False
        return self.subdistrict_code is None or subdistrict_code == self.subdistrict_code

    def require(self, district_code: str | None, subdistrict_code: str | None, not_found: NotFound) -> None:
        """Raise `not_found` (the same error as for an id nobody has) when the thing is outside the area."""
        if not self.contains(district_code, subdistrict_code):
            raise not_found

    def where(self, district_column: Any, subdistrict_column: Any = None) -> list[Any]:
        """SQL conditions confining a query to the area (`[]` when it confines nothing).

        A table without a sub-district column (payments, recoveries) passes None: a sub-district-bound caller
        then sees none of its rows, never the whole district's.
        """
        conditions: list[Any] = []
        if self.district_code is not None:
            conditions.append(district_column == self.district_code)
        if self.subdistrict_code is not None:
            conditions.append(subdistrict_column == self.subdistrict_code if subdistrict_column is not None
                              else false())
        return conditions
