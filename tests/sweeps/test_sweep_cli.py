"""``cairn sweeps`` against the sweep routes served over real HTTP (uvicorn on a free port, under
the gateway's ``/api/v1/scheduler`` prefix) with a real nats-server behind them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from click.testing import CliRunner
from fastapi import APIRouter

from cairn.cli.main import cli
from cairn.kernel.service import create_service_app
from cairn.kernel.settings import ServiceSettings
from cairn.kernel.store import SnapshotProjection, SqliteStore
from cairn.natsserver import free_port, start_nats_server
from cairn.services.registry.project_check import ProjectCheck
from cairn.services.scheduler.sweeps.api import router
from cairn.services.scheduler.sweeps.projection import SWEEP_EVOLVERS, SWEEP_HANDLERS, SWEEP_SCHEMA

from platform_harness import SignedAsGateway

DOCS_EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "sweeps.md"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("sweeps-cli")
    proc, nats_url = start_nats_server(data)
    prefixed = APIRouter(prefix="/api/v1/scheduler")
    prefixed.include_router(router)
    app = create_service_app(
        "scheduler", ServiceSettings(nats_url=nats_url, data_dir=data),
        make_store=lambda s: SqliteStore(s.data_dir / "sweeps.sqlite3", SWEEP_SCHEMA),
        handler=SnapshotProjection(SWEEP_EVOLVERS, SWEEP_HANDLERS), routers=[prefixed], description="test")
    app.state.project_check = ProjectCheck(known=["vision"])  # no registry here (services/registry/project_check.py)
    port = free_port("127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(SignedAsGateway(app, data), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)
    proc.terminate()
    proc.wait()


def _example_spec() -> dict[str, Any]:
    """The sweep.yaml shown in docs/sweeps.md (so the docs' example is known to be accepted)."""
    text = DOCS_EXAMPLE.read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = yaml.safe_load(block)
    spec["job"]["code"] = "none"  # no artifact store behind this test server to upload a snapshot to
    return spec


def _cli(url: str, *args: str, ok: bool = True) -> Any:
    result = CliRunner(env={"CAIRN_TOKEN": "unused"}).invoke(cli, ["--url", url, "--json", *args])
    if ok:
        assert result.exit_code == 0, result.output
        return json.loads(result.output)
    assert result.exit_code != 0
    return result.output


def test_create_list_show_table_stop(url: str, tmp_path: Path) -> None:
    spec_file = tmp_path / "sweep.yaml"
    spec_file.write_text(yaml.safe_dump(_example_spec(), sort_keys=False))
    sweep = _cli(url, "sweeps", "create", str(spec_file))
    assert sweep["status"] == "running" and sweep["project"] == "vision"
    assert [s["id"] for s in _cli(url, "sweeps", "list", "-p", "vision")["sweeps"]] == [sweep["id"]]
    shown = _cli(url, "sweeps", "show", "-p", "vision", sweep["id"])
    assert shown["spec"]["early_stopping"]["type"] == "asha" and shown["trials"] == []
    table = _cli(url, "sweeps", "table", "-p", "vision", sweep["id"])
    assert [d["name"] for d in table["dimensions"]] == sorted(_example_spec()["parameters"])  # log order
    assert _cli(url, "sweeps", "stop", "-p", "vision", sweep["id"])["status"] == "stopped"
    assert _cli(url, "sweeps", "list", "-p", "vision", "--status", "running")["sweeps"] == []


def test_people_get_tables_and_clear_errors(url: str, tmp_path: Path) -> None:
    spec_file = tmp_path / "sweep.yaml"
    spec_file.write_text(yaml.safe_dump({**_example_spec(), "project": None}, sort_keys=False))
    out = _cli(url, "sweeps", "create", str(spec_file), ok=False)
    assert "which project?" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**_example_spec(), "method": "anneal"}, sort_keys=False))
    out = _cli(url, "sweeps", "create", str(bad), ok=False)
    assert "method:" in out and "422" in out
    bad.write_text("- just\n- a list\n")
    assert "must hold a mapping" in _cli(url, "sweeps", "create", str(bad), "-p", "vision", ok=False)
    spec_file.write_text(yaml.safe_dump(_example_spec(), sort_keys=False))
    created = _cli(url, "sweeps", "create", str(spec_file), "-p", "vision")
    result = CliRunner(env={"CAIRN_TOKEN": "unused"}).invoke(cli, ["--url", url, "sweeps", "show", "-p", "vision",
                                                                   created["id"]])
    assert result.exit_code == 0 and "lr-search" in result.output and "none yet" in result.output


@pytest.mark.parametrize("command", ["create", "list", "show", "table", "stop"])
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(cli, ["sweeps", command, "--help"])
    assert result.exit_code == 0 and "Example:" in result.output
