"""Model versions from a local folder (services/gateway/mlflow/model_local.py): copied into the
content-addressed store when the site allows the folder and a run is named, refused with MLflow's
message otherwise, never read outside the allowed folders (symbolic links included)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cairn.core import fingerprint_tree

from platform_harness import Platform, running

REFUSED = "To use a local path as a model version source"


@pytest.fixture(scope="module")
def allowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("allowed-models")


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory, allowed: Path) -> Iterator[Platform]:
    env = {"gateway": {"CAIRN_MLFLOW_LOCAL_SOURCES": str(allowed)}}
    with running(Platform(tmp_path_factory.mktemp("platform-local-sources"), service_env=env)) as plat:
        with httpx.Client(base_url=f"{plat.gateway}/api/v1", headers=plat.headers, timeout=30) as admin:
            admin.post("/registry/projects", json={"name": "local-src"}).raise_for_status()
        yield plat


@pytest.fixture()
def mlflow(plat: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{plat.gateway}/mlflow/local-src/api/2.0/mlflow", headers=plat.headers,
                      timeout=60) as http:
        yield http


def _model_folder(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "MLmodel").write_text(f"# {name}\nflavors:\n  python_function: {{}}\n")
    (folder / "model.pkl").write_bytes(os.urandom(2048))
    return folder


def _run(mlflow: httpx.Client) -> str:
    resp = mlflow.post("/runs/create", json={"experiment_id": "0"})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["run"]["info"]["run_id"])


def test_an_allowed_folder_is_copied_and_pinned(plat: Platform, mlflow: httpx.Client, allowed: Path) -> None:
    folder = _model_folder(allowed, "m1")
    expected = fingerprint_tree(folder).digest
    assert mlflow.post("/registered-models/create", json={"name": "copied"}).status_code == 200
    resp = mlflow.post("/model-versions/create", json={"name": "copied", "source": folder.as_uri(),
                                                       "run_id": _run(mlflow)})
    assert resp.status_code == 200, resp.text
    assert resp.json()["model_version"]["source"] == folder.as_uri()
    with httpx.Client(base_url=f"{plat.gateway}/api/v1", headers=plat.headers, timeout=30) as cairn:
        version = cairn.get("/registry/projects/local-src/models/copied/versions/1").json()
        assert version["artifact_digest"] == expected
        (folder / "model.pkl").write_bytes(b"changed afterwards")  # the version keeps the bytes it pinned
        manifest = cairn.get(f"/artifacts/manifests/{expected}")
        assert manifest.status_code == 200, manifest.text
    # a plain path works the same
    second = _model_folder(allowed, "m2")
    resp = mlflow.post("/model-versions/create", json={"name": "copied", "source": str(second),
                                                       "run_id": _run(mlflow)})
    assert resp.status_code == 200 and resp.json()["model_version"]["version"] == "2"


def test_what_is_refused_reads_and_registers_nothing(plat: Platform, mlflow: httpx.Client, allowed: Path,
                                                     tmp_path: Path) -> None:
    assert mlflow.post("/registered-models/create", json={"name": "refused"}).status_code == 200
    outside = _model_folder(tmp_path, "outside")
    escape_link = allowed / "escape"
    escape_link.symlink_to(outside, target_is_directory=True)
    with_link = _model_folder(allowed, "with-link")
    (with_link / "secret").symlink_to(outside / "model.pkl")
    inside = _model_folder(allowed, "inside")
    run = _run(mlflow)
    cases = [({"source": str(outside), "run_id": run}, REFUSED),          # not in an allowed folder
             ({"source": str(escape_link), "run_id": run}, REFUSED),      # a link out of it
             ({"source": str(inside)}, REFUSED),                          # no run: MLflow's rule
             ({"source": "models/relative", "run_id": run}, REFUSED),     # not absolute
             ({"source": str(with_link), "run_id": run}, "symbolic links")]
    for body, message in cases:
        resp = mlflow.post("/model-versions/create", json={"name": "refused", **body})
        assert resp.status_code == 400, (body, resp.text)
        assert message in resp.json()["message"]
    resp = mlflow.post("/model-versions/create", json={"name": "refused", "source": str(inside),
                                                       "run_id": "f" * 32})
    assert resp.status_code == 404
    with httpx.Client(base_url=f"{plat.gateway}/api/v1", headers=plat.headers, timeout=30) as cairn:
        assert cairn.get("/registry/projects/local-src/models/refused").json()["latest_version"] is None
        held = cairn.post("/artifacts/projects/local-src/blobs/missing",
                          json={"digests": [e.digest for e in fingerprint_tree(inside).entries]}).json()
        assert len(held["missing"]) == 2, "nothing of a refused folder was uploaded"
