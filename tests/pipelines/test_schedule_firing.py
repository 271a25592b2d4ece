"""The schedule clock's decision, with time passed in: the latest due firing only (a downtime over
many slots fires once), nothing before the first slot, and keys that name a schedule by what it is."""

from __future__ import annotations

from datetime import UTC, datetime

from cairn.pipelines.cron import CronSchedule
from cairn.services.pipelines.triggers_runtime import due_firing, schedule_id

HOURLY = CronSchedule.parse("0 * * * *", "UTC")


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def test_nothing_is_due_before_the_next_slot() -> None:
    assert due_firing(HOURLY, at(9, 0), at(9, 59)) is None


def test_a_slot_is_due_at_its_time_exactly() -> None:
    assert due_firing(HOURLY, at(9, 0), at(10, 0)) == at(10, 0)


def test_a_downtime_over_many_slots_fires_only_the_latest() -> None:
    assert due_firing(HOURLY, at(9, 0), at(17, 30, day=3)) == at(17, 0, day=3)


def test_a_zone_is_followed_in_local_wall_time() -> None:
    paris = CronSchedule.parse("30 2 * * *", "Europe/Paris")
    due = due_firing(paris, at(0, 0), at(5, 0))
    assert due is not None and due.astimezone(paris.tz).hour == 2 and due.astimezone(UTC).hour == 1


def test_schedule_ids_name_the_schedule_not_its_position() -> None:
    assert schedule_id("0 * * * *", "UTC") == schedule_id("0 * * * *", "UTC")
    assert schedule_id("0 * * * *", "UTC") != schedule_id("0 * * * *", "Europe/Paris")
