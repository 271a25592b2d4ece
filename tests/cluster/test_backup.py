"""``cairn backup create`` / ``restore`` end to end: a platform's JetStream state snapshotted while
it runs, restored into a new, empty nats-server, and a new set of services (empty read-model
folders) started on it rebuilds the same read models; a corrupted backup restores nothing.

Why end to end: a backup is only worth what its restore gives back, and what matters is not that
the stream's bytes came back but that the platform built on them is the same (sequences kept, so
projections, idempotency windows and the keys in ``cairn-keys`` all line up). Everything is real:
two nats-servers, two sets of service processes, the CLI in-process through click's runner.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import cairn
from cairn.cli.main import cli
from cairn.kernel.natsauth import ADMIN_USER
from cairn.protocol import EVENTS_STREAM

from platform_harness import Platform, running, stream_last_seq, wait_metrics_settled

PROJECT = "bk"
WRITER_PROJECT = "bkw"
CHUNK = 4096  # small chunks: the snapshot and the restore go through many of them, with flow control


def backup_cli(plat: Platform, *args: str) -> Any:
    """``cairn --json backup ARGS`` against ``plat``'s nats-server as its admin user."""
    return CliRunner().invoke(cli, ["--json", "backup", *args, "--nats-url", plat.nats_server_url,
                                    "--creds", str(plat.nats_creds[ADMIN_USER])])


def read_models(plat: Platform) -> dict[str, Any]:
    """What the registry and the scheduler serve of the project: every run (params, tags, metric
    summaries, status) and every job, in a stable order."""
    with cairn.Client(plat.gateway, token=plat.token) as client:
        runs = sorted(client.search_runs(PROJECT)["runs"], key=lambda run: run["id"])
        jobs = sorted(client.list_jobs(PROJECT), key=lambda job: job["id"])
        named = [run["id"] for run in sorted(runs, key=lambda run: run["name"]) if run["name"].startswith("run-")]
        return {"runs": [client.get_run(PROJECT, run["id"]) for run in runs], "run_list": runs,
                "jobs": [client.get_job(PROJECT, job["id"]) for job in jobs],
                # final metric values, as the registry projected them from metric.summarized events
                "diff": client.diff_runs(named[0], named[-1]) if len(named) > 1 else None}


def workload(plat: Platform) -> None:
    """Runs with params, tags and metrics, a queued job and a cancelled one (no agent: the
    scheduler's read model holds them as they are)."""
    with cairn.Client(plat.gateway, token=plat.token) as client:
        for index in range(3):
            with cairn.start_run(project=PROJECT, client=client, name=f"run-{index}") as run:
                run.log_params({"lr": 0.1 * (index + 1), "layers": index})
                run.set_tag("kind", "backup-test")
                for step in range(200):
                    run.log_metrics({"loss": 1.0 / (step + 1 + index)}, step=step)
        client.submit_job({"command": [sys.executable, "-c", "pass"], "code": "none", "queue": "nowhere"}, PROJECT)
        cancelled = client.submit_job({"command": ["true"], "code": "none", "queue": "nowhere"}, PROJECT)
        client.cancel_job(PROJECT, cancelled["id"])
    wait_metrics_settled(plat)  # every metric.summarized appended before the backup


class Writer:
    """Tags written one after another on a run of a project of their own while the backup is
    taken: each acknowledged write with its event's sequence (``Cairn-Seq``). The snapshot is one
    point of the log: the restore must hold exactly the acknowledged writes up to its last
    sequence, whichever moment that was."""

    def __init__(self, plat: Platform) -> None:
        with cairn.Client(plat.gateway, token=plat.token) as client:
            self.run_id = client.start_new_run(WRITER_PROJECT, name="writer")["id"]
        self.url = f"{plat.gateway}/api/v1/registry/projects/{WRITER_PROJECT}/runs/{self.run_id}/tags"
        self.headers = plat.headers
        self.acked: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(headers=self.headers, timeout=30) as http:
            for index in itertools.count():
                if self.stop.is_set():
                    return
                resp = http.put(f"{self.url}/w{index}", json={"value": str(index)})
                if resp.status_code == 200:
                    self.acked[f"w{index}"] = int(resp.headers["Cairn-Seq"])

    def __enter__(self) -> "Writer":
        self.thread.start()
        deadline = time.monotonic() + 60
        while len(self.acked) < 3 and time.monotonic() < deadline:  # writing before the snapshot starts
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        done, deadline = len(self.acked), time.monotonic() + 60
        while len(self.acked) < done + 2 and time.monotonic() < deadline:  # writing after the backup too
            time.sleep(0.02)
        self.stop.set()
        self.thread.join(timeout=60)


@dataclass
class RestoredPlatform(Platform):
    """A platform whose new, empty nats-server gets ``backup`` restored after it starts and
    before any service does (what an operator does on a new cluster), with the old platform's
    secrets (the same service key and admin token: "the same local_dir" in docs/deploy.md)."""

    backup: Path | None = None
    restore_output: str = ""

    def _start_services(self) -> list[str]:
        if self.backup is not None:
            result = backup_cli(self, "restore", str(self.backup))
            self.restore_output = result.output
            assert result.exit_code == 0, result.output
            self.backup = None  # a retried start (a port taken) does not restore twice
        return super()._start_services()


@pytest.fixture(scope="module")
def restored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], RestoredPlatform, Path]]:
    root = tmp_path_factory.mktemp("backup")
    with running(Platform(root / "before")) as before:
        workload(before)
        models = read_models(before)
        writer = Writer(before)
        with writer:  # the backup is taken under writes
            result = backup_cli(before, "create", "--out", str(root / "bk"), "--chunk-size", str(CHUNK))
        assert result.exit_code == 0, result.output
        models["writer"] = (writer.run_id, dict(writer.acked))
    target = RestoredPlatform(root / "after", backup=root / "bk")
    (target.data_dir).mkdir(parents=True)
    shutil.copytree(before.data_dir / "secrets", target.data_dir / "secrets")
    shutil.copy2(before.data_dir / "admin.token", target.data_dir / "admin.token")
    with running(target):
        yield models, target, root / "bk"


def test_restore_into_an_empty_server_rebuilds_the_same_read_models(
        restored: tuple[dict[str, Any], RestoredPlatform, Path]) -> None:
    models, target, backup = restored
    manifest = (backup / "manifest.json").read_text()
    assert "KV_cairn-keys" in manifest and "KV_cairn-leases" not in manifest.split('"skipped"')[0]
    run_id, acked = models.pop("writer")
    deadline = time.monotonic() + 60
    while (now := read_models(target)) != models and time.monotonic() < deadline:
        time.sleep(0.2)  # the services rebuild their read models from the restored log
    assert len(models["runs"]) == 5 and len(models["jobs"]) == 2  # a job makes a run of its own
    named = [run for run in models["runs"] if run["name"].startswith("run-")]
    assert len(named) == 3 and all(run["params"]["layers"] in ("0", "1", "2") for run in named)
    assert "loss" in json.dumps(models["diff"])  # the metrics' summaries, announced as events
    assert now == models

    # the writes during the backup: exactly the acknowledged ones up to the snapshot's last sequence
    snapshot_seq = next(stream["state"]["last_seq"] for stream in json.loads(manifest)["streams"]
                        if stream["name"] == EVENTS_STREAM)
    with cairn.Client(target.gateway, token=target.token) as client:
        tags = client.get_run(WRITER_PROJECT, run_id)["tags"]
    assert {key: str(int(key[1:])) for key, seq in acked.items() if seq <= snapshot_seq} == tags
    assert any(seq > snapshot_seq for seq in acked.values())  # some landed after the snapshot's point


def test_a_restore_refuses_a_stream_the_server_has(restored: tuple[dict[str, Any], RestoredPlatform, Path]) -> None:
    _, target, backup = restored
    last = stream_last_seq(target)
    result = backup_cli(target, "restore", str(backup))
    assert result.exit_code == 1
    assert "has stream CAIRN_EVENTS" in result.output and "--replace" in result.output
    assert stream_last_seq(target) == last


def test_a_corrupted_chunk_restores_nothing(restored: tuple[dict[str, Any], RestoredPlatform, Path],
                                           tmp_path: Path) -> None:
    _, target, backup = restored
    broken = tmp_path / "broken"
    shutil.copytree(backup, broken)
    snapshot = broken / f"{EVENTS_STREAM}.snapshot"
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0xFF
    snapshot.write_bytes(bytes(data))
    last = stream_last_seq(target)

    verify = CliRunner().invoke(cli, ["backup", "verify", str(broken)])
    assert verify.exit_code == 1 and "does not match its digest: the backup is corrupted" in verify.output
    result = backup_cli(target, "restore", "--replace", str(broken))  # even told to replace: nothing
    assert result.exit_code == 1
    assert f"of {EVENTS_STREAM}.snapshot (bytes " in result.output
    assert "corrupted; nothing was restored" in result.output
    assert stream_last_seq(target) == last
