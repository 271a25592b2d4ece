"""Cron schedules for pipeline triggers: five fields, a time zone, and the next firing time.

Written here rather than taken from croniter so that the two rules that matter for a trigger that
must fire exactly once are ours and tested: day-of-month and day-of-week combine as Vixie cron does
(if either field starts with ``*`` both must match, otherwise either may), and a schedule follows
the wall clock of its zone across daylight-saving changes. A wall time that does not exist (the hour
skipped in spring) is skipped; one that happens twice (the hour repeated in autumn) fires once, at
its first occurrence. Every instant is computed with :mod:`zoneinfo`, never by adding offsets.
"""

from __future__ import annotations

import bisect
import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cairn.kernel.errors import InvalidInput

MONTH_NAMES = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
DAY_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
# (name, lowest, highest, names): the five fields in the order cron writes them.
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day-of-month", 1, 31, {}), ("month", 1, 12, MONTH_NAMES),
    ("day-of-week", 0, 7, DAY_NAMES))
MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
          "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
          "@hourly": "0 * * * *"}
# No valid schedule waits longer than this between two firings (29 February with a gap year, as
# 2096 -> 2104); a search that goes further has a bug, and says so rather than looping.
SEARCH_LIMIT = timedelta(days=366 * 9)


def _number(text: str, field: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(text.upper()) if names else None
    if value is None:
        if not text.isdigit():
            known = f" or a name ({', '.join(names)})" if names else ""
            raise InvalidInput(f"cron field {field!r}: {text!r} is not a number{known}",
                               details={"field": field})
        value = int(text)
    if not low <= value <= high:
        raise InvalidInput(f"cron field {field!r}: {value} is out of range {low}-{high}", details={"field": field})
    return value


def parse_field(text: str, field: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    """One field (``*/15``, ``9-17``, ``MON-FRI``, ``1,15,30``, ``5/10``) -> the values it allows."""
    if not text:
        raise InvalidInput(f"cron field {field!r} is empty", details={"field": field})
    values: set[int] = set()
    for item in text.split(","):
        body, _, step_text = item.partition("/")
        step = 1
        if step_text or item.endswith("/"):
            if not step_text.isdigit() or int(step_text) == 0:
                raise InvalidInput(f"cron field {field!r}: step in {item!r} must be a positive number",
                                   details={"field": field})
            step = int(step_text)
        if body == "*":
            start, stop = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, stop = (_number(first, field, low, high, names), _number(last, field, low, high, names))
            if start > stop:
                raise InvalidInput(f"cron field {field!r}: range {body!r} runs backwards; write it low-high",
                                   details={"field": field})
        else:
            start = _number(body, field, low, high, names)
            stop = high if step_text else start  # Vixie: "5/10" means 5-max/10
        values.update(range(start, stop + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule. ``dom_star``/``dow_star``: whether that field started with ``*``, which
    decides (as in Vixie cron) whether the two day fields must both match or either may."""

    expression: str
    tz: ZoneInfo
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: tuple[int, ...]
    weekdays: frozenset[int]  # 0 = Sunday (7 is folded into 0)
    dom_star: bool
    dow_star: bool

    @classmethod
    def parse(cls, expression: str, tz: str = "UTC") -> CronSchedule:
        """``"*/15 9-17 * * MON-FRI"`` or a macro (``@daily``...) in time zone ``tz`` (IANA name)."""
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(f"time zone {tz!r} is unknown: use an IANA name like 'Europe/Paris'",
                               details={"field": "tz"}) from None
        text = " ".join(expression.split())
        text = MACROS.get(text.lower(), text)
        if text.startswith("@"):
            raise InvalidInput(f"cron macro {text!r} is unknown; known: {', '.join(MACROS)}",
                               details={"field": "expression"})
        parts = text.split(" ")
        if len(parts) != 5:
            raise InvalidInput(f"cron expression {expression!r} has {len(parts)} fields; it needs 5: "
                               "minute hour day-of-month month day-of-week", details={"field": "expression"})
        sets = [parse_field(part, *spec) for part, spec in zip(parts, FIELDS)]
        weekdays = frozenset(d % 7 for d in sets[4])
        schedule = cls(expression=expression, tz=zone, minutes=tuple(sorted(sets[0])),
                       hours=tuple(sorted(sets[1])), days=sets[2], months=tuple(sorted(sets[3])),
                       weekdays=weekdays, dom_star=parts[2].startswith("*"), dow_star=parts[4].startswith("*"))
        if schedule.dow_star and not any(day <= _longest_month(month) for month in schedule.months
                                         for day in schedule.days):
            raise InvalidInput(f"cron field 'day-of-month' in {expression!r}: no month allowed has those days, "
                               "so it would never fire",
                               details={"field": "day-of-month"})
        return schedule

    def day_matches(self, day: date) -> bool:
        """Vixie's rule: a ``*`` in either day field means both must match, else either may."""
        in_month = day.day in self.days
        in_week = day.isoweekday() % 7 in self.weekdays
        if self.dom_star or self.dow_star:
            return in_month and in_week
        return in_month or in_week

    def next_after(self, moment: datetime) -> datetime:
        """The first firing strictly after ``moment`` (timezone-aware), in the schedule's zone."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InvalidInput("next_after needs a timezone-aware datetime", details={"field": "moment"})
        # Compare in UTC: two datetimes sharing a tzinfo compare by wall clock, ignoring fold.
        after = moment.astimezone(timezone.utc)
        limit = after + SEARCH_LIMIT
        wall = moment.astimezone(self.tz).replace(tzinfo=None, fold=0, second=0, microsecond=0)
        while True:
            wall = self._next_wall(wall)
            instant = wall.replace(tzinfo=self.tz)  # fold=0: the first occurrence of a repeated time
            utc = instant.astimezone(timezone.utc)
            if utc > after and _exists(instant):
                return instant
            if utc > limit:
                raise InvalidInput(f"cron expression {self.expression!r} never fires", details={"field": "expression"})
            wall += timedelta(minutes=1)

    def _next_wall(self, wall: datetime) -> datetime:
        """The first wall-clock minute at or after ``wall`` that the fields allow (zone ignored)."""
        end = wall + SEARCH_LIMIT
        while wall <= end:
            if wall.month not in self.months:
                i = bisect.bisect_right(self.months, wall.month)
                year, month = (wall.year, self.months[i]) if i < len(self.months) else (wall.year + 1, self.months[0])
                wall = datetime(year, month, 1)
                continue
            if not self.day_matches(wall.date()):
                wall = datetime.combine(wall.date() + timedelta(days=1), datetime.min.time())
                continue
            if wall.hour not in self.hours:
                i = bisect.bisect_right(self.hours, wall.hour)
                if i == len(self.hours):
                    wall = datetime.combine(wall.date() + timedelta(days=1), datetime.min.time())
                else:
                    wall = wall.replace(hour=self.hours[i], minute=0)
                continue
            i = bisect.bisect_left(self.minutes, wall.minute)
            if i < len(self.minutes):
                return wall.replace(minute=self.minutes[i])
            wall = wall.replace(minute=0) + timedelta(hours=1)
        raise InvalidInput(f"cron expression {self.expression!r} never fires", details={"field": "expression"})


def _longest_month(month: int) -> int:
    return 29 if month == 2 else calendar.monthrange(2001, month)[1]


def _exists(instant: datetime) -> bool:
    """Whether this wall time happens at all: a time in the spring gap does not survive a round trip."""
    back = instant.astimezone(timezone.utc).astimezone(instant.tzinfo)
    return back.replace(tzinfo=None, fold=0) == instant.replace(tzinfo=None, fold=0)
