"""A Cairn machine's secrets, between Cairn's own files and SSM Parameter Store.

``cairn_secrets.py generate``: on the first NATS node, once per installation: make the CA and the
NATS nodes' certificates (``cairn cluster certs``), every NATS user's credentials and the leaf
sites' configs (``cairn cluster config``) and the service key, put each into SSM as a
SecureString, then ``ready``. A re-run after a crash half-way finds Cairn's files kept (both
commands keep what exists) and puts the same values again; once ``ready`` exists it does nothing.

``cairn_secrets.py fetch``: on every machine: wait for ``ready`` (20 minutes at most), then write
each parameter that /etc/cairn/secrets.json names to its file, owned by the cairn user, mode 0600,
written whole (temporary file, fsync, rename).

Runs as root with the machine's instance role; the role lets each tier read its own files only.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import subprocess
import sys
import time
from pathlib import Path

import boto3

SPEC = json.loads(Path("/etc/cairn/secrets.json").read_text())
SSM = boto3.client("ssm", region_name=SPEC["region"])
ROOT = SPEC["path"]  # /<name>
TLS = Path("/etc/cairn/tls")
NATS = Path("/etc/cairn/nats")
CAIRN = pwd.getpwnam("cairn")
WAIT_S = 1200


def exists(name: str) -> bool:
    try:
        SSM.get_parameter(Name=name)
    except SSM.exceptions.ParameterNotFound:
        return False
    return True


def put(name: str, value: str) -> None:
    SSM.put_parameter(Name=name, Value=value, Type="SecureString", KeyId=SPEC["kms_key"], Overwrite=True)


def cairn(*args: str) -> None:
    subprocess.run(["runuser", "-u", "cairn", "--", "/opt/cairn/bin/cairn", "--json", *args],
                   check=True, stdout=subprocess.DEVNULL)


def generate() -> None:
    if exists(f"{ROOT}/ready"):
        return
    nodes = SPEC["nodes"]  # [{"name", "ip"}], the NATS nodes
    cairn("cluster", "certs", "--out", str(TLS), "--name", SPEC["name"],
          *[arg for node in nodes for arg in ("--host", f"{node['name']}={node['ip']}")])
    ports = SPEC["ports"]
    cairn("cluster", "config", "--out", str(NATS), "--name", SPEC["name"], "--tls-dir", str(TLS),
          "--replicas", str(SPEC["replicas"]), "--store-dir", "/var/lib/cairn/nats",
          *[arg for node in nodes for arg in
            ("--node", f"{node['name']}={node['ip']}:{ports['client']}:{ports['cluster']}:{ports['leaf']}")],
          *[arg for site in SPEC["sites"] for arg in ("--site", f"{site}=0.0.0.0:4222")])
    for path in sorted(TLS.glob("*.pem")):
        put(f"{ROOT}/tls/{path.name}", path.read_text())
    for path in sorted((NATS / "creds").glob("*.json")):
        put(f"{ROOT}/creds/{path.stem}", path.read_text())
    for path in sorted((NATS / "leaf").glob("*.conf")):
        put(f"{ROOT}/leaf/{path.name}", path.read_text())
    put(f"{ROOT}/service-key", secrets.token_hex(32))
    put(f"{ROOT}/ready", "1")
    # This machine keeps only what it needs: its own key, not the CA's or the other nodes'.
    (TLS / "ca-key.pem").unlink()
    for node in nodes:
        if node["name"] != SPEC["node"]:
            (TLS / f"{node['name']}-key.pem").unlink()


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text if text.endswith("\n") else text + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.chown(tmp, CAIRN.pw_uid, CAIRN.pw_gid)
    os.replace(tmp, path)


def fetch() -> None:
    deadline = time.monotonic() + WAIT_S
    while not exists(f"{ROOT}/ready"):
        if time.monotonic() > deadline:
            sys.exit(f"{ROOT}/ready did not appear in {WAIT_S} s: is the first NATS node up? "
                     "See its log group (cloud-init output) for why it did not make the secrets.")
        time.sleep(10)
    for item in SPEC["files"]:
        value = SSM.get_parameter(Name=item["parameter"], WithDecryption=True)["Parameter"]["Value"]
        write_private(Path(item["path"]), value)


if __name__ == "__main__":
    {"generate": generate, "fetch": fetch}[sys.argv[1]]()
