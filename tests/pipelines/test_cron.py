"""Cron schedules: parsing, Vixie's day rule, and next_after against a brute-force reference that
walks every UTC minute of a year in a zone with daylight-saving changes."""

from __future__ import annotations

import bisect
import functools
import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cairn.kernel.errors import InvalidInput
from cairn.pipelines.cron import CronSchedule

UTC = timezone.utc
PARIS, NEW_YORK = "Europe/Paris", "America/New_York"


def fires(expression: str, start: datetime, count: int, tz: str = PARIS) -> list[datetime]:
    schedule, out, moment = CronSchedule.parse(expression, tz=tz), [], start
    for _ in range(count):
        moment = schedule.next_after(moment)
        out.append(moment)
    return out


def local(tz: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold)  # type: ignore[misc,arg-type]


# --- parsing -------------------------------------------------------------------------------------

def test_fields_accept_lists_ranges_steps_and_names() -> None:
    s = CronSchedule.parse("*/15 9-17/4 1,15 jan-MAR,dec MON-FRI")
    assert s.minutes == (0, 15, 30, 45)
    assert s.hours == (9, 13, 17)
    assert s.days == {1, 15}
    assert s.months == (1, 2, 3, 12)
    assert s.weekdays == {1, 2, 3, 4, 5}


def test_a_start_with_a_step_runs_to_the_end_of_the_field_and_seven_is_sunday() -> None:
    s = CronSchedule.parse("50/5 * * * 7")
    assert s.minutes == (50, 55)
    assert s.weekdays == {0}


@pytest.mark.parametrize("macro, expression", [("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"),
                                               ("@weekly", "0 0 * * 0"), ("@monthly", "0 0 1 * *"),
                                               ("@yearly", "0 0 1 1 *")])
def test_macros_mean_their_five_fields(macro: str, expression: str) -> None:
    start = datetime(2025, 1, 1, 12, 34, tzinfo=UTC)
    assert fires(macro, start, 3) == fires(expression, start, 3)


@pytest.mark.parametrize("expression, field", [
    ("60 * * * *", "minute"), ("* 24 * * *", "hour"), ("* * 0 * *", "day-of-month"),
    ("* * * 13 *", "month"), ("* * * * 8", "day-of-week"), ("* * * FOO *", "month"),
    ("*/0 * * * *", "minute"), ("* 17-9 * * *", "hour"), ("* * * * MON-", "day-of-week"),
    ("* * *", "expression"), ("@every5m", "expression"), ("0 0 30 2 *", "day-of-month"),
])
def test_bad_expressions_are_refused_naming_the_field(expression: str, field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        CronSchedule.parse(expression)
    assert info.value.details["field"] == field
    assert field in info.value.message or field == "expression"


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(InvalidInput, match="Mars/Olympus"):
        CronSchedule.parse("* * * * *", tz="Mars/Olympus")


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        CronSchedule.parse("* * * * *").next_after(datetime(2025, 1, 1))


# --- day rule ------------------------------------------------------------------------------------

def test_restricted_day_of_month_and_day_of_week_fire_on_either() -> None:
    # 2025-06: the 13th is a Friday; Mondays are 2, 9, 16...
    days = [d.day for d in fires("0 12 13 * MON", local(PARIS, 2025, 6, 1), 4)]
    assert days == [2, 9, 13, 16]


def test_a_starred_day_field_makes_both_day_fields_required() -> None:
    days = [(d.month, d.day) for d in fires("0 12 */1 * FRI", local(PARIS, 2025, 6, 1), 2)]
    assert days == [(6, 6), (6, 13)]
    days = [(d.month, d.day) for d in fires("0 12 13 * *", local(PARIS, 2025, 6, 1), 2)]
    assert days == [(6, 13), (7, 13)]


def test_the_twenty_ninth_of_february_waits_for_a_leap_year() -> None:
    assert fires("0 0 29 2 *", datetime(2025, 1, 1, tzinfo=UTC), 2, tz="UTC") == [
        datetime(2028, 2, 29, tzinfo=ZoneInfo("UTC")), datetime(2032, 2, 29, tzinfo=ZoneInfo("UTC"))]


def test_next_after_is_strictly_after() -> None:
    at = local(PARIS, 2025, 6, 2, 12, 0)
    assert fires("0 12 * * *", at, 1) == [local(PARIS, 2025, 6, 3, 12, 0)]
    assert fires("0 12 * * *", at - timedelta(microseconds=1), 1) == [at]


# --- daylight saving ---------------------------------------------------------------------------

def test_a_time_in_the_spring_gap_is_skipped_that_day() -> None:
    # Paris, 2025-03-30: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    assert fires("30 2 * * *", local(PARIS, 2025, 3, 29, 12), 2) == [
        local(PARIS, 2025, 3, 31, 2, 30), local(PARIS, 2025, 4, 1, 2, 30)]
    assert fires("30 2 * * *", local(NEW_YORK, 2025, 3, 8, 12), 1, tz=NEW_YORK) == [
        local(NEW_YORK, 2025, 3, 10, 2, 30)]


def test_every_minute_across_the_spring_gap_goes_from_0159_to_0300() -> None:
    got = fires("* * * * *", local(PARIS, 2025, 3, 30, 1, 58), 2)
    assert [d.astimezone(UTC) for d in got] == [datetime(2025, 3, 30, 0, 59, tzinfo=UTC),
                                                 datetime(2025, 3, 30, 1, 0, tzinfo=UTC)]
    assert (got[1].hour, got[1].minute) == (3, 0)


def test_a_repeated_time_in_autumn_fires_once_at_its_first_occurrence() -> None:
    # Paris, 2025-10-26: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    got = fires("30 2 * * *", local(PARIS, 2025, 10, 25, 12), 2)
    assert [d.astimezone(UTC) for d in got] == [datetime(2025, 10, 26, 0, 30, tzinfo=UTC),
                                                 datetime(2025, 10, 27, 1, 30, tzinfo=UTC)]
    # New York, 2025-11-02: 02:00 EDT goes back to 01:00 EST.
    got = fires("*/20 1 * * *", local(NEW_YORK, 2025, 11, 2, 0, 30), 4, tz=NEW_YORK)
    assert [d.astimezone(UTC) for d in got] == [datetime(2025, 11, 2, 5, m, tzinfo=UTC) for m in (0, 20, 40)] + [
        datetime(2025, 11, 3, 6, 0, tzinfo=UTC)]


def test_from_inside_the_second_pass_of_a_repeated_hour_the_next_firing_is_after_it() -> None:
    # 02:10 CET (second pass): 02:30's only firing was in the first pass, an hour ago.
    inside = local(PARIS, 2025, 10, 26, 2, 10, fold=1)
    assert fires("30 2 * * *", inside, 1) == [local(PARIS, 2025, 10, 27, 2, 30)]
    assert fires("0 3 * * *", inside, 1)[0].astimezone(UTC) == datetime(2025, 10, 26, 2, 0, tzinfo=UTC)


def test_hourly_across_both_changes_is_one_firing_per_real_hour_that_has_a_new_wall_time() -> None:
    spring = fires("@hourly", local(NEW_YORK, 2025, 3, 9, 0, 30), 3, tz=NEW_YORK)
    assert [d.hour for d in spring] == [1, 3, 4]
    autumn = fires("@hourly", local(NEW_YORK, 2025, 11, 2, 0, 30), 3, tz=NEW_YORK)
    assert [d.astimezone(UTC).hour for d in autumn] == [5, 7, 8]  # 01:00 EDT, then 02:00 EST


# --- against a brute-force reference ---------------------------------------------------------------

YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_MINUTES = 365 * 24 * 60


@functools.cache
def year_of_walls(tz: str) -> tuple[tuple[int, int, int, int, int, int], ...]:
    """(minute, hour, day, month, weekday 0=Sunday, fold) of every UTC minute of 2025, in ``tz``."""
    zone, out = ZoneInfo(tz), []
    for i in range(YEAR_MINUTES):
        w = (YEAR_START + timedelta(minutes=i)).astimezone(zone)
        out.append((w.minute, w.hour, w.day, w.month, w.isoweekday() % 7, w.fold))
    return tuple(out)


def reference_firings(fields: list[set[int]], dom_star: bool, dow_star: bool, tz: str) -> list[int]:
    """Minutes (from the year's start) at which a wall clock in ``tz`` shows an allowed time for the
    first time: each UTC minute checked on its own, the repeated hour's second pass left out."""
    minutes, hours, days, months, weekdays = fields
    out = []
    for i, (mi, h, d, mo, wd, fold) in enumerate(year_of_walls(tz)):
        if fold or mi not in minutes or h not in hours or mo not in months:
            continue
        in_month, in_week = d in days, wd in weekdays
        if (in_month and in_week) if (dom_star or dow_star) else (in_month or in_week):
            out.append(i)
    return out


def field_text(draw: st.DrawFn, low: int, high: int, allow_star: bool = True) -> tuple[str, set[int]]:
    kind = draw(st.sampled_from(["star", "step", "list", "range"] if allow_star else ["list", "range"]))
    if kind == "star":
        return "*", set(range(low, high + 1))
    if kind == "step":
        step = draw(st.integers(2, max(2, (high - low) // 2)))
        return f"*/{step}", set(range(low, high + 1, step))
    if kind == "list":
        values = draw(st.sets(st.integers(low, high), min_size=1, max_size=4))
        return ",".join(map(str, sorted(values))), values
    a, b = sorted(draw(st.tuples(st.integers(low, high), st.integers(low, high))))
    step = draw(st.integers(1, 3))
    return f"{a}-{b}/{step}", set(range(a, b + 1, step))


@st.composite
def expressions(draw: st.DrawFn) -> tuple[str, list[set[int]], bool, bool]:
    # Minutes never '*' alone, so a year holds at most tens of thousands of firings.
    minute = field_text(draw, 0, 59, allow_star=False)
    hour = field_text(draw, 0, 23)
    dom = field_text(draw, 1, 31)
    month = field_text(draw, 1, 12)
    dow = field_text(draw, 0, 6)
    parts = [minute, hour, dom, month, dow]
    texts = [text for text, _ in parts]
    return " ".join(texts), [values for _, values in parts], texts[2].startswith("*"), texts[4].startswith("*")


@functools.cache
def transitions(tz: str) -> tuple[int, ...]:
    """Minutes of the year at which the wall clock jumps (the two daylight-saving changes)."""
    walls = year_of_walls(tz)
    of_day = [w[1] * 60 + w[0] for w in walls]
    return tuple(i for i in range(1, len(walls)) if (of_day[i] - of_day[i - 1]) % 1440 != 1)


@pytest.mark.parametrize("tz", [PARIS, NEW_YORK])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=expressions(), seed=st.integers(0, 2**32))
def test_next_after_agrees_with_a_minute_by_minute_walk_over_a_year(
        tz: str, case: tuple[str, list[set[int]], bool, bool], seed: int) -> None:
    expression, fields, dom_star, dow_star = case
    try:
        schedule = CronSchedule.parse(expression, tz=tz)
    except InvalidInput:
        return  # e.g. "0 0 30-31 2 *": never fires, refused at parse time; tested above
    expected = reference_firings(fields, dom_star, dow_star, tz)
    assert len(transitions(tz)) == 2
    rng = random.Random(seed)
    # Query points: the first firings in a row, random seconds across the year, and each DST change.
    points = [rng.uniform(0, YEAR_MINUTES) for _ in range(60)]
    points += [t + d for t in transitions(tz) for d in (-61, -1.5, -0.5, 0, 0.5, 30, 59.5, 61)]
    chained, moment = [], YEAR_START - timedelta(seconds=1)
    for _ in range(min(50, len(expected))):
        moment = schedule.next_after(moment)
        chained.append(round((moment.astimezone(UTC) - YEAR_START).total_seconds() / 60))
    assert chained == expected[:len(chained)]
    for point in points:
        i = bisect.bisect_right(expected, point)
        if i == len(expected):
            continue
        got = schedule.next_after(YEAR_START + timedelta(minutes=point))
        assert got.astimezone(UTC) == YEAR_START + timedelta(minutes=expected[i]), (expression, point)
        assert got.tzinfo == ZoneInfo(tz)
