"""``cairn backup`` against a real 3-node NATS cluster with TLS (the cluster of
test_nats_cluster.py, made by ``cairn cluster certs``/``config``): a snapshot of replicated
streams is answered by each stream's leader, and a restore goes through the meta leader and is
replicated again. Why apart from test_backup.py: a cluster is what production backs up, and both
API calls behave differently there (only the leader answers a snapshot request; a restore is
staged, then proposed to the cluster). The CLI connects as the admin env file says, as an operator
on a cluster machine would (docs/deploy.md, "Backups and restore").
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.kernel.natsauth import ADMIN_USER
from cairn.protocol import EVENTS_STREAM, KEY_BUCKET, create_stream, events_stream_config
from tests.cluster.test_nats_cluster import Cluster, admin_connection, cluster  # noqa: F401 - the fixture

EVENTS = 500


def backup_cli(state: Cluster, *args: str) -> Any:
    env = {**state.env(ADMIN_USER), "CAIRN_NATS_CREDS": str(state.out / "creds" / f"{ADMIN_USER}.json")}
    return CliRunner(env=env).invoke(cli, ["--json", "backup", *args])


async def fill(state: Cluster) -> dict[int, bytes]:
    """The event stream at 3 replicas with EVENTS messages, and a key in cairn-keys; each
    acknowledged message by its sequence."""
    nc = await admin_connection(state)
    try:
        await create_stream(nc, events_stream_config(replicas=3))
        js = nc.jetstream()
        acked = {}
        for index in range(EVENTS):
            data = f"event {index}".encode()
            ack = await js.publish(f"cairn.evt.bk.run.{index % 9}", data, headers={"Nats-Msg-Id": f"bk-{index}"})
            acked[ack.seq] = data
        kv = await js.create_key_value(bucket=KEY_BUCKET, history=1, replicas=3)
        await kv.put("seal", b"k" * 32)
        return acked
    finally:
        await nc.close()


async def stored(state: Cluster) -> tuple[dict[str, Any], dict[int, bytes], bytes]:
    """The event stream's config and state, every message by sequence, the key."""
    nc = await admin_connection(state)
    try:
        js = nc.jetstream()
        info = await js.stream_info(EVENTS_STREAM)
        messages = {}
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            messages[seq] = (await js.get_msg(EVENTS_STREAM, seq)).data or b""
        key = (await (await js.key_value(KEY_BUCKET)).get("seal")).value or b""
        return {"replicas": info.config.num_replicas, "messages": info.state.messages,
                "last_seq": info.state.last_seq}, messages, key
    finally:
        await nc.close()


def test_backup_and_restore_on_a_tls_cluster(cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    acked = asyncio.run(fill(cluster))
    made = backup_cli(cluster, "create", "--out", str(tmp_path / "bk"))
    assert made.exit_code == 0, made.output
    streams = {row["stream"]: row for row in json.loads(made.output)}
    assert streams[EVENTS_STREAM]["messages"] == EVENTS and f"KV_{KEY_BUCKET}" in streams

    refused = backup_cli(cluster, "restore", str(tmp_path / "bk"))
    assert refused.exit_code == 1 and f"has stream {EVENTS_STREAM}" in refused.output
    done = backup_cli(cluster, "restore", "--replace", str(tmp_path / "bk"))
    assert done.exit_code == 0, done.output

    summary, messages, key = asyncio.run(stored(cluster))
    assert summary == {"replicas": 3, "messages": EVENTS, "last_seq": max(acked)}
    assert messages == acked  # every acknowledged event, at its sequence
    assert key == b"k" * 32
