"""A run's reproducibility record through the real platform: start_run in a git repository records
commit, branch, diff, packages, command and seeds; the environment endpoint's rules; rebuild."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import httpx
import loopback
import pytest

import cairn
from cairn.sdk.code_snapshot import read_snapshot

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A git repository on branch main with one commit, and train.py changed since it."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text("lr = 0.1\n")
    git(root, "add", "train.py")
    git(root, "commit", "-q", "-m", "first")
    (root / "train.py").write_text("lr = 0.2\n")
    return root


@pytest.fixture()
def client(platform: Platform) -> cairn.Client:
    with cairn.Client(platform.gateway, token=platform.token) as c:
        yield c


def test_start_run_in_a_git_repo_records_code_environment_and_seed(client: cairn.Client, repo: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.chdir(repo)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("CAIRN_ENV_ALLOWLIST", "HF_TOKEN")
    with cairn.start_run(project="repro", seed=1234, client=client) as run:
        pass
    record = client.get_run_environment("repro", run.id)
    code = record["code"]
    assert code["commit"] == git(repo, "rev-parse", "HEAD") and code["branch"] == "main"
    assert code["dirty"] is True and "+lr = 0.2" in code["diff"]
    env = record["environment"]
    assert any(p.startswith("cairn-mlops==") for p in env["packages"])
    assert env["env"]["OMP_NUM_THREADS"] == "3" and "HF_TOKEN" not in env["env"]
    assert "hf_secret" not in str(record)
    assert record["seeds"] == {"seed": 1234}
    assert record["command"] and record["command"] == env["command"]
    archive = client.artifacts.download_blob(code["archive_digest"], tmp_path / "code.tar.gz")
    assert read_snapshot(archive) == {"train.py": b"lr = 0.2\n"}


def test_recording_can_be_turned_off(client: cairn.Client, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    with cairn.start_run(project="repro", record_environment=False, client=client) as run:
        pass
    monkeypatch.setenv("CAIRN_RECORD_ENVIRONMENT", "0")
    with cairn.start_run(project="repro", client=client) as run_env_off:
        pass
    for run_id in (run.id, run_env_off.id):
        with pytest.raises(cairn.ApiError) as err:
            client.get_run_environment("repro", run_id)
        assert err.value.status == 404 and "no environment record" in err.value.message


def test_outside_git_the_run_warns_and_records_the_rest(client: cairn.Client, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cairn.start_run(project="repro", client=client) as run:
            pass
    assert any("not in a git work tree" in str(w.message) for w in caught)
    record = client.get_run_environment("repro", run.id)
    assert record["code"] is None and record["environment"]["python"]["version"]
    assert client.get_run("repro", run.id)["status"] == "finished"


def test_each_section_is_recorded_once_and_seeds_are_immutable(client: cairn.Client) -> None:
    with cairn.start_run(project="repro", record_environment=False, client=client) as run:
        first = client.record_run_environment("repro", run.id, environment={"python": {"version": "3.11"}},
                                              command=["python", "train.py"])
        again = client.record_run_environment("repro", run.id, environment={"python": {"version": "3.11"}})
        assert again["environment"] == first["environment"] and again["updated_at"] == first["updated_at"]
        with pytest.raises(cairn.ApiError) as err:
            client.record_run_environment("repro", run.id, environment={"python": {"version": "3.12"}})
        assert err.value.status == 409 and "once" in err.value.message
        assert run.set_seed(7, apply=False) == []
        run.set_seed(11, "data_seed")
        with pytest.raises(cairn.ApiError) as err:
            run.set_seed(8)
        assert err.value.status == 409
    record = client.get_run_environment("repro", run.id)
    assert record["seeds"] == {"seed": 7, "data_seed": 11}
    assert record["command"] == ["python", "train.py"] and record["code"] is None


def test_bad_records_are_refused_with_a_reason(platform: Platform, client: cairn.Client) -> None:
    run = client.create_run(client.ensure_project("repro")["name"])
    api = httpx.Client(base_url=f"{platform.gateway}/api/v1/registry/projects/repro", headers=platform.headers)
    bad_digest = api.put(f"/runs/{run['id']}/environment", json={"code": {"archive_digest": "xyz"}})
    assert bad_digest.status_code == 422
    assert api.put(f"/runs/{run['id']}/environment", json={}).status_code == 422
    assert api.put(f"/runs/{run['id']}/environment", json={"oops": 1}).status_code == 422
    assert api.put("/runs/no-such-run/environment", json={"command": ["x"]}).status_code == 404
    assert api.get(f"/runs/{run['id']}/environment").status_code == 404


def test_record_survives_a_projection_rebuild(client: cairn.Client, repo: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    with cairn.start_run(project="repro", seed=5, client=client) as run:
        run.set_seed(6, "other")
    before = client.get_run_environment("repro", run.id)
    client.rebuild("registry")
    assert client.get_run_environment("repro", run.id) == before


def test_code_archive_is_kept_by_gc_and_hidden_from_other_projects(platform: Platform, client: cairn.Client,
                                                                    repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    monkeypatch.chdir(repo)
    with cairn.start_run(project="repro-gc", client=client) as run:
        pass
    digest = client.get_run_environment("repro-gc", run.id)["code"]["archive_digest"]
    client.artifacts.gc(grace_seconds=0)
    assert client.artifacts.download_blob(digest, tmp_path / "kept.tar.gz").exists()
    client.ensure_project("repro-elsewhere")
    outsider = client.create_token("repro-outsider")["token"]
    client.add_member("repro-elsewhere", "repro-outsider", "admin")
    resp = loopback.get(f"{platform.gateway}/api/v1/artifacts/blobs/{digest}",
                     headers={"Authorization": f"Bearer {outsider}"})
    assert resp.status_code == 404
