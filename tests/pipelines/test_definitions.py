"""Registered pipelines without a platform: the ``pipeline`` aggregate's decisions, the read model
over a real SQLite store (definitions, the repository lookup, owed event triggers and how a
remembered command settles them), and what routes show of secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.kernel.envelope import Event
from cairn.kernel.errors import InvalidInput, NotFound
from cairn.kernel.schemas import validate_event
from cairn.kernel.store import EventHandlers, SnapshotProjection, SqliteStore
from cairn.pipelines import PipelineError
from cairn.services.pipelines import definitions as d

FILE = """\
name: train
params: {lr: 0.1}
on:
  push: {branches: [main]}
  event: {type: dataset.version_created, where: {data.name: fraud}}
steps:
  - id: a
    command: echo
"""
REPO = {"full_name": "Acme/ML", "clone_url": "/srv/git/ml.git"}
HOOK = {"kind": "github", "secret": "s" * 20}


class Store(d.DefinitionsReader, SqliteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path, d.DEFINITIONS_SCHEMA)


def registered(**overrides: object) -> tuple[str, dict]:
    args: dict = {"text": FILE, "path": d.DEFAULT_PATH, "repo": REPO, "hook": HOOK, "status": None, "params": {}}
    args.update(overrides)
    return d.register(None, **args)


def test_register_validates_the_file_and_the_rest() -> None:
    kind, data = registered(params={"lr": 0.2}, status={"url": "https://api.github.com", "token": "t"})
    assert kind == "pipeline.registered" and data["triggers"]["push"]["branches"] == ["main"]
    validate_event(Event(kind, "p", "pipeline", "train", data))
    with pytest.raises(PipelineError) as bad:
        registered(text="name: x\nsteps: []\n")
    assert bad.value.details["problems"][0]["line"] == 2
    for overrides, field in (({"params": {"epochs": 3}}, "params"), ({"path": "../x.yaml"}, "path"),
                             ({"repo": {**REPO, "clone_url": "git://h/x"}}, "repo.clone_url"),
                             ({"repo": {**REPO, "full_name": "noslash"}}, "repo.full_name"),
                             ({"hook": None}, "hook"), ({"repo": None}, "repo")):
        with pytest.raises(InvalidInput) as err:
            registered(**overrides)
        assert err.value.details["field"] == field, overrides
    with pytest.raises(InvalidInput, match="local repositories are off"):
        registered(allow_local=False)
    assert registered(allow_local=False, repo={**REPO, "clone_url": "https://git.example.com/acme/ml.git"})
    with pytest.raises(NotFound):
        d.delete(None, name="train")
    assert d.delete(d.evolve(None, kind, data), name="train") == ("pipeline.deleted", {})


def _store(tmp_path: Path) -> tuple[Store, SnapshotProjection]:
    return Store(tmp_path / "s.sqlite3"), SnapshotProjection(d.DEFINITIONS_EVOLVERS,
                                                            d.merge_handlers(d.DEFINITIONS_HANDLERS))


def test_projection_keeps_definitions_and_owes_one_run_per_selected_event(tmp_path: Path) -> None:
    store, projection = _store(tmp_path)
    _, data = registered()
    events = [Event("pipeline.registered", "p", "pipeline", "train", data, sequence=1),
              Event("dataset.version_created", "p", "dataset", "fraud", {"version": 1}, sequence=2),
              Event("dataset.version_created", "p", "dataset", "spam", {"version": 1}, sequence=3),
              Event("dataset.version_created", "other", "dataset", "fraud", {"version": 1}, sequence=4)]
    store.apply(events, projection)
    store.apply(events[1:2], projection)  # the same event again (a redelivery) is owed once
    assert [x["name"] for x in store.definitions_for_repo("acme/ml")] == ["train"]
    owed = store.owed_event_triggers()
    assert [(o["event_id"], o["name"]) for o in owed] == [(events[1].id, "train")]
    # the trigger loop's command under the event's key settles it
    key = f"{d.ACTOR}:p:{d.event_trigger_key(events[1].id, 'train')}"
    store.reader().execute("INSERT INTO idempotency(key, seq, subject, aggregate_id, type) VALUES(?,?,?,?,?)",
                           (key, 9, "s", "run1", "pipeline_run.started"))
    assert store.owed_event_triggers() == []
    store.apply([Event("pipeline.deleted", "p", "pipeline", "train", {}, sequence=5),
                 Event("dataset.version_created", "p", "dataset", "fraud", {"version": 2}, sequence=6)], projection)
    assert store.definitions("p") == [] and store.owed_event_triggers() == []


def test_routes_show_whether_secrets_are_set_never_the_secrets(tmp_path: Path) -> None:
    store, projection = _store(tmp_path)
    _, data = registered(status={"url": "https://api.github.com", "token": "tok-123"})
    store.apply([Event("pipeline.registered", "p", "pipeline", "train", data, sequence=1)], projection)
    shown = d.public(store.definition("p", "train") or {})
    assert shown["hook"] == {"kind": "github", "secret_set": True}
    assert shown["status"] == {"url": "https://api.github.com", "token_set": True}
    assert "s" * 20 not in str(shown) and "tok-123" not in str(shown)


def test_merged_handlers_run_both_for_a_shared_type() -> None:
    seen: list[str] = []
    other = EventHandlers()
    other["dataset.version_created"] = lambda conn, e: seen.append("facts")
    merged = d.merge_handlers(other, {"dataset.version_created": lambda conn, e: seen.append("triggers")})
    merged["dataset.version_created"](None, None)  # type: ignore[arg-type]
    assert seen == ["facts", "triggers"]


def test_an_event_type_the_service_never_reads_is_refused_at_registration() -> None:
    text = "name: t\non: {event: {type: token.created}}\nsteps:\n  - {id: a, command: echo}\n"
    with pytest.raises(InvalidInput, match="token.created' cannot start a pipeline"):
        registered(text=text, hook=None, repo=None)
    ok = "name: t\non: {event: [{type: pipeline_run.finished}, {type: model_version.*}]}\nsteps:\n  - {id: a, command: echo}\n"
    assert registered(text=ok, hook=None, repo=None)[0] == "pipeline.registered"
