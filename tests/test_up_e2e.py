"""``cairn up`` end to end in a subprocess: health, SDK, a crashed service comes back, a killed
nats-server comes back on its port, Ctrl-C stops everything."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from up_driver import alive, healthy, start_up, wait

import cairn


def test_cairn_up_end_to_end(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    up = start_up(data_dir)
    try:
        up.wait_healthy()
        state = up.state()
        pids = [state["nats_pid"]] + [s["pid"] for s in [*state["services"].values(), *state["helpers"].values()]]
        assert set(state["helpers"]) == {"subscriber-sync"}

        token_file = data_dir / "admin.token"
        assert token_file.stat().st_mode & 0o777 == 0o600, "the first admin token is private to its owner"
        client = cairn.Client(up.url, token=token_file.read_text().strip())
        with cairn.start_run(project="e2e", experiment="smoke", params={"lr": 0.1}, client=client) as run:
            run.set_tag("stage", "test")
        assert client.get_run("e2e", run.id)["status"] == "finished"

        registry_pid = state["services"]["registry"]["pid"]
        os.kill(registry_pid, signal.SIGKILL)

        def restarted() -> bool:
            return up.state()["services"]["registry"]["pid"] != registry_pid and healthy(up.url)

        wait(restarted, 30, "the registry to be restarted")
        record = client.get_run("e2e", run.id)
        assert (record["status"], record["params"], record["tags"]) == ("finished", {"lr": "0.1"}, {"stage": "test"})

        os.kill(state["nats_pid"], signal.SIGKILL)
        wait(lambda: up.state()["nats_pid"] != state["nats_pid"], 30, "nats-server to be restarted")
        assert up.state()["nats_url"] == state["nats_url"], "nats-server came back on its own port"
        wait(lambda: healthy(up.url), 60, "every service to be connected to NATS again")
        with cairn.start_run(project="e2e", experiment="smoke", client=client) as after:
            pass
        assert client.get_run("e2e", after.id)["status"] == "finished"
        pids += [s["pid"] for s in up.state()["services"].values()] + [up.state()["nats_pid"]]
        client.close()
    finally:
        out = up.stop()
    assert up.proc.returncode == 0, out
    assert "Cairn is up" in out and "Cairn stopped" in out
    wait(lambda: not any(alive(pid) for pid in pids), 10, "every child process to exit")
    assert not (data_dir / "run" / "state.json").exists()
