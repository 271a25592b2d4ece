"""The monitor CLI and SDK against the monitor service (part C of issue 20): registered profiles,
a deployment's reference, status, alert rules and alerts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.monitor import Profile, profile_table
from cairn.sdk.client import ApiError, Client
from cairn.sdk.deployments import Deployments

from model_helpers import push_model_folder
from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py

PROJECT = "cli-monitor"
DEPLOYMENT = "fraud"


@pytest.fixture(scope="module")
def client(platform: Platform) -> Client:
    with Client(platform.gateway, token=platform.token) as c:
        c.ensure_project(PROJECT)
        run_id = c.create_run(PROJECT)["id"]
        c.create_model(PROJECT, "fraud-model")
        c.create_model_version(PROJECT, "fraud-model", run_id=run_id, artifact_digest=push_model_folder(platform.gateway, platform.headers, PROJECT))
        Deployments(c).create(PROJECT, DEPLOYMENT, environment="dev", model="fraud-model", version=1, replicas=0)
        yield c


@pytest.fixture(scope="module")
def cli_json(platform: Platform):  # type: ignore[no-untyped-def]
    runner = CliRunner(env={"CAIRN_TOKEN": platform.token})

    def invoke(*args: str, ok: bool = True) -> object:
        result = runner.invoke(cli, ["--url", platform.gateway, "--json", *args], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
            return json.loads(result.output)
        assert result.exit_code == 1, result.output
        return result.output

    return invoke


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("monitor-cli") / "reference.parquet"
    pq.write_table(pa.table({"amount": rng.normal(100, 15, 3000),
                             "channel": pa.array(rng.choice(["web", "app"], 3000))}), path)
    return path


def test_profile_is_registered_under_its_digest_and_reads_back(client: Client, cli_json, reference_file: Path) -> None:
    made = cli_json("monitor", "profile", str(reference_file), "-p", PROJECT)
    expected = profile_table(reference_file)
    assert made["registered"] is True and made["digest"] == expected.digest()
    assert client.get_profile(PROJECT, made["digest"]) == expected
    assert made["digest"] in [p["digest"] for p in client.list_profiles(PROJECT)]
    assert client.register_profile(PROJECT, expected, {}) == made["digest"]  # content-addressed: same digest


def test_drift_reference_by_digest_equals_the_file(client: Client, cli_json, reference_file: Path,
                                                    tmp_path: Path) -> None:
    digest = client.register_profile(PROJECT, profile_table(reference_file), {})
    current = tmp_path / "current.parquet"
    table = pq.read_table(reference_file)
    pq.write_table(table.set_column(0, "amount", pa.array(np.asarray(table["amount"]) + 20.0)), current)
    by_digest = cli_json("monitor", "drift", "-p", PROJECT, "-r", digest, "-c", str(current))
    by_file = cli_json("monitor", "drift", "-r", str(reference_file), "-c", str(current))
    assert by_digest["reference"] == {"profile": digest} and by_digest["columns"] == by_file["columns"]
    unknown = cli_json("monitor", "drift", "-p", PROJECT, "-r", "0" * 64, "-c", str(current), ok=False)
    assert "(404" in unknown


def test_reference_set_and_show_and_status(client: Client, cli_json, reference_file: Path) -> None:
    digest = client.register_profile(PROJECT, Profile.from_json(profile_table(reference_file).to_json()),
                                     {"dataset": "fraud", "version": 1})
    cli_json("monitor", "reference", "set", "-p", PROJECT, DEPLOYMENT, digest)
    assert digest in json.dumps(cli_json("monitor", "reference", "show", "-p", PROJECT, DEPLOYMENT))
    assert isinstance(cli_json("monitor", "status", "-p", PROJECT, DEPLOYMENT), dict)
    assert isinstance(client.monitor_windows(PROJECT, DEPLOYMENT, since="1h"), dict)
    failed = cli_json("monitor", "reference", "set", "-p", PROJECT, DEPLOYMENT, "0" * 64, ok=False)
    assert "error:" in failed


def test_rules_add_list_delete_and_alerts(client: Client, cli_json) -> None:
    rule = cli_json("monitor", "rules", "add", "-p", PROJECT, DEPLOYMENT, "--name", "drifting",
                    "--metric", "drift_share", "--comparison", ">=", "--threshold", "0.5",
                    "--persistence", "2/3", "--rollback")
    listed = cli_json("monitor", "rules", "list", "-p", PROJECT, DEPLOYMENT)
    assert [r["id"] for r in listed] == [rule["id"]]
    assert listed[0]["persistence"] == {"k": 2, "n": 3} and listed[0]["action"] == {"rollback": True}
    assert cli_json("monitor", "alerts", "-p", PROJECT, "--deployment", DEPLOYMENT) == []
    cli_json("monitor", "rules", "delete", "-p", PROJECT, DEPLOYMENT, rule["id"])
    assert client.alert_rules(PROJECT, DEPLOYMENT) == []
    with pytest.raises(ApiError) as err:
        client.add_alert_rule(PROJECT, DEPLOYMENT, name="bad", metric="no_such_metric", comparison=">",
                              threshold=1.0)
    assert 400 <= err.value.status < 500 and "metric" in err.value.message
