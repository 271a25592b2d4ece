"""A registry read model built before models had subjects of their own (the model's snapshot held
only versions and aliases; its name was in the project's) is completed when the store opens, so
commands on those models work after an upgrade without a rebuild."""

from __future__ import annotations

from pathlib import Path

from cairn.kernel.envelope import subject_for
from cairn.kernel.store import load_state, save_state
from cairn.services.registry.store import RegistryStore, model_names


def test_opening_an_old_read_model_gives_each_model_its_state_at_its_position(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite3"
    old = RegistryStore(path)
    with old.transaction() as conn:  # what the old projection left: views, and a versions-only snapshot
        conn.execute("INSERT INTO projects VALUES('p', '', 0, 't', 't', 'u')")
        for model_id, name, archived in (("m1", "churn", 0), ("m2", "fraud", 1)):
            conn.execute("INSERT INTO models(id, project, name, description, archived, created_at, updated_at, "
                         "created_by, created_seq) VALUES(?, 'p', ?, 'd', ?, 't', 't', 'u', 1)",
                         (model_id, name, archived))
        conn.execute("INSERT INTO model_tags(model_id, key, value) VALUES('m1', 'team', 'risk')")
        save_state(conn, subject_for("p", "model", "m1"), 7,
                   {"latest_version": 1, "versions": {"1": {"archived": False}}, "aliases": {"prod": 1}})
    old.close()

    upgraded = RegistryStore(path)
    with upgraded.transaction() as conn:
        m1, m2 = (load_state(conn, subject_for("p", "model", m)) for m in ("m1", "m2"))
    assert m1 == (7, {"latest_version": 1, "versions": {"1": {"archived": False}}, "aliases": {"prod": 1},
                      "name": "churn", "description": "d", "archived": False, "tags": {"team": "risk"}})
    assert m2 == (0, {"latest_version": 0, "versions": {}, "aliases": {}, "name": "fraud", "description": "d",
                      "archived": True, "tags": {}})  # no event on its subject yet: position 0
    with upgraded.snapshot() as conn:
        names = model_names(conn, "p")
    assert (names.project_exists, names.names) == (True, {"churn": "m1", "fraud": "m2"})
    before = upgraded.content_hash()
    upgraded.close()
    assert RegistryStore(path).content_hash() == before  # idempotent
