"""Quiet hours: no message is sent at night by the district's clock; messages written then wait."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

# China Standard Time (no daylight saving): people sleep by their own clock, not UTC's.
LOCAL_TIME = timezone(timedelta(hours=8), "CST")


@dataclass(frozen=True)
class QuietHours:
    """A daily window [start, end) in local time when nothing is sent; it may span midnight (21:00-08:00).
    `None` for both: no quiet hours."""

    start: time | None = None
    end: time | None = None

    @classmethod
    def parse(cls, text: str) -> "QuietHours":
        """`"21:00-08:00"`, or `"off"` (also empty) for none."""
        text = text.strip().lower()
        if text in ("", "off", "none"):
            return cls()
        try:
            start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
        except ValueError:
            raise ValueError(f"quiet hours are HH:MM-HH:MM or 'off', not {text!r}") from None
        if start == end:
            raise ValueError("quiet hours start and end at the same time")
        return cls(start, end)

    def is_quiet(self, at: datetime) -> bool:
        if self.start is None or self.end is None:
            return False
        local = at.astimezone(LOCAL_TIME).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_allowed(self, at: datetime) -> datetime:
        """`at` itself outside quiet hours, else the end of the quiet window (the same instant's zone: UTC)."""
        if not self.is_quiet(at) or self.end is None:
            return at
        local = at.astimezone(LOCAL_TIME)
        end = datetime.combine(local.date(), self.end, LOCAL_TIME)
        if end <= local:
            end += timedelta(days=1)
        return end.astimezone(at.tzinfo)

    def __str__(self) -> str:
        if self.start is None or self.end is None:
            return "off"
        return f"{self.start:%H:%M}-{self.end:%H:%M} CST"
