"""``on:`` in the pipeline file: push, event and schedule triggers and ``manual``, each problem with
its line, and what ``on:`` does to the digest."""

from __future__ import annotations

import textwrap

import pytest

from cairn.pipelines import PipelineError, load_pipeline
from cairn.pipelines.spec import EventTrigger, PushTrigger, ScheduleTrigger

STEPS = """\
steps:
  - id: a
    command: echo
"""


def pipeline_with(on: str):  # type: ignore[no-untyped-def]
    return load_pipeline("name: p\n" + textwrap.dedent(on) + STEPS)


def problems(on: str) -> list[tuple[int, str]]:
    with pytest.raises(PipelineError) as caught:
        pipeline_with(on)
    return [(p.line, p.message) for p in caught.value.problems]


def test_every_trigger_kind_is_read_with_one_or_many_entries() -> None:
    p = pipeline_with("""\
        on:
          push: {branches: [main, "release/*"], paths: ["**", "!docs/**"]}
          event:
            - {type: dataset.version_created, where: {data.name: fraud}}
            - {type: alert.fired, where: {data.deployment: [fraud, spam]}}
          schedule: {cron: "0 3 * * MON-FRI", tz: Europe/Paris}
          manual: false
        """)
    assert p.on.push == PushTrigger(("main", "release/*"), (), ("**", "!docs/**"))
    assert p.on.events == (EventTrigger("dataset.version_created", (("data.name", "fraud"),)),
                           EventTrigger("alert.fired", (("data.deployment", ("fraud", "spam")),)))
    assert p.on.schedules == (ScheduleTrigger("0 3 * * MON-FRI", "Europe/Paris"),)
    assert p.on.manual is False


def test_a_bare_push_key_means_any_push_and_manual_defaults_to_true() -> None:
    p = pipeline_with("on:\n  push:\n")
    assert p.on.push == PushTrigger() and p.on.manual is True and p.on.declared


def test_a_file_without_on_keeps_its_digest_and_on_is_part_of_the_digest() -> None:
    plain = load_pipeline("name: p\n" + STEPS)
    assert not plain.on.declared and "on" not in plain.to_dict()
    assert plain.digest() == "031d94e6e6cfc089a07cfdf13e850439d5506be91d3576a4a7f1de17c1a1b214"
    main = pipeline_with("on: {push: {branches: [main]}}\n")
    dev = pipeline_with("on: {push: {branches: [dev]}}\n")
    assert len({plain.digest(), main.digest(), dev.digest()}) == 3
    spelled = pipeline_with("on:\n  push:\n    branches: main\n  manual: true\n")
    assert spelled.digest() == main.digest()  # same meaning, same digest


def test_each_trigger_problem_names_its_line() -> None:
    found = problems("""\
        on:
          push: {branch: [main]}
          event: [{type: Dataset}]
          schedule: {cron: "0 25 * * *"}
          manual: yes please
          pull_request: {}
        """)
    assert found == [
        (3, "on.push: push filter has unknown keys ['branch']; allowed: branches, tags, paths"),
        (4, "on.event: event filter type 'Dataset' must be an event type like 'dataset.version_created' "
            "or 'alert.*'"),
        (5, "on.schedule: cron field 'hour': 25 is out of range 0-23"),
        (6, "on.manual must be true or false, not the text 'yes please'"),
        (7, "on: unknown key 'pull_request'; known keys: push, event, schedule, manual"),
    ]


def test_schedule_and_event_shape_problems() -> None:
    found = problems("""\
        on:
          schedule:
            - {tz: UTC}
            - {cron: "@daily", tz: Mars/Olympus}
          event: {type: run.created, where: {name: x}}
        """)
    assert found == [
        (4, "on.schedule: missing required key 'cron'"),
        (5, "on.schedule: time zone 'Mars/Olympus' is unknown: use an IANA name like 'Europe/Paris'"),
        (6, "on.event: event filter path 'name' must start with 'data.' (e.g. 'data.name')"),
    ]
    assert problems("on: [push]\n") == [(2, "on must be a mapping of keys to values, not a list")]
    assert problems("on: {schedule: []}\n") == [(2, "on.schedule is an empty list: remove it or give at least one")]


@pytest.mark.parametrize("on", [
    "on: {event: {type: dataset.version_created, where: {data.name: [a, b]}}}\n",
    "on: {push: {tags: ['v*']}, schedule: [{cron: '@daily', tz: Europe/Paris}], manual: false}\n",
    "on: {manual: true}\n",
])
def test_the_canonical_form_reads_back_as_the_same_pipeline(on: str) -> None:
    """A run keeps ``to_dict()``; the pipeline read back from it must be the same (same digest)."""
    from cairn.services.pipelines.store import pipeline_of

    first = pipeline_with(on)
    again = pipeline_of({"definition": first.to_dict()})
    assert again.on == first.on and again.digest() == first.digest()
