"""Backups of Cairn's JetStream state and their restore, over JetStream's own snapshot API.

Why snapshots and not a replay of messages: a snapshot (``$JS.API.STREAM.SNAPSHOT.<stream>``) is
the server's own file-level copy of a stream, taken while it keeps accepting writes, and restored
(``$JS.API.STREAM.RESTORE.<stream>``) with every message at its ORIGINAL sequence number. Cairn
needs that: projections record the sequence they applied, ``Cairn-Seq`` answers name sequences,
and appends are checked with ``Nats-Expected-Last-Subject-Sequence``, so a log copied message by
message (new sequences) would not be the same log.

The protocol (nats-server's jetstream_api.go): a snapshot request names a deliver subject; the
server answers with the stream's config and state, then sends the snapshot (an s2-compressed tar)
in chunks to that subject, each with a reply subject the client answers to let more come (flow
control), and ends with an empty message (a ``408`` status on it: the server gave up). A restore
request carries the config and state and is answered with a deliver subject; the client sends
each chunk as a request (answered empty, or ``-ERR ...``), then an empty request, answered with the
restored stream's info or an error.

What is backed up: every stream on the server but two key-value buckets: ``cairn-leases`` (who
leads a singleton for the next seconds: a restored lease names a process of the old cluster and
would only hold the new one's singletons up until it expires) and ``cairn-sessions`` (web sessions:
short-lived, and bringing back one revoked after the backup was taken would undo the revocation;
users sign in again). ``cairn-keys`` IS backed up: without its sealing key the secrets sealed into
events (webhook secrets) cannot be read, and without the job-token key the running jobs' tokens
fail. A backup therefore holds secrets: it is written readable by its owner only.
Durable consumers are left out (``no_consumers``): each service makes its own again from its read
model, which a restore starts empty.

Each stream's snapshot is one file, with a SHA-256 digest per chunk and of the whole file in
``manifest.json``; a restore checks every digest of every stream before it restores anything, so a
corrupted backup fails naming the file and chunk and leaves the server untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cairn.kernel.errors import BackupError
from cairn.protocol import LEASE_BUCKET, SESSIONS_BUCKET

MANIFEST = "manifest.json"
FORMAT = 1
CHUNK_SIZE = 128 * 1024
API_TIMEOUT_S = 10.0
# the server stops a restore that sees no chunk for 5 s, and a snapshot whose reader does not ask
# for more for 2 s: a chunk that takes longer than this to arrive or be answered is a failure
CHUNK_TIMEOUT_S = 30.0
# why a bucket's stream is not in a backup (the module docstring says more)
SKIPPED: dict[str, str] = {
    f"KV_{LEASE_BUCKET}": "leases of singletons: they name the old cluster's processes and expire in seconds",
    f"KV_{SESSIONS_BUCKET}": "web sessions: short-lived; restoring one revoked since would undo the revocation",
}


@dataclass(frozen=True)
class StreamCopy:
    """One stream in a backup: its file, digests, and the config and state the server reported."""

    name: str
    file: str
    size: int
    sha256: str
    chunk_size: int
    chunks: list[str]
    config: dict[str, Any]
    state: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "size": self.size, "sha256": self.sha256,
                "chunk_size": self.chunk_size, "chunks": self.chunks, "config": self.config, "state": self.state}


async def _api(nc: Any, subject: str, body: dict[str, Any], timeout: float = API_TIMEOUT_S) -> dict[str, Any]:
    """A JetStream API request; its ``error`` as a :class:`BackupError`."""
    reply = await nc.request(subject, json.dumps(body).encode(), timeout=timeout)
    answer: dict[str, Any] = json.loads(reply.data) if reply.data else {}
    if answer.get("error"):
        raise BackupError(f"{subject}: {answer['error'].get('description', answer['error'])}")
    return answer


async def stream_names(nc: Any) -> list[str]:
    """Every stream on the server (``$JS.API.STREAM.NAMES``, page by page), sorted."""
    names: list[str] = []
    while True:
        page = await _api(nc, "$JS.API.STREAM.NAMES", {"offset": len(names)})
        batch = page.get("streams") or []
        names += batch
        if not batch or len(names) >= int(page.get("total", 0)):
            return sorted(names)


async def snapshot_stream(nc: Any, name: str, path: Path, chunk_size: int = CHUNK_SIZE) -> StreamCopy:
    """Write one stream's snapshot to ``path`` (atomically: a failed one leaves no file)."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)  # before the request: the server waits only 2 s for interest
    tmp = path.with_suffix(".part")
    whole = hashlib.sha256()
    chunks: list[str] = []
    size = 0
    try:
        answer = await _api(nc, f"$JS.API.STREAM.SNAPSHOT.{name}",
                            {"deliver_subject": inbox, "no_consumers": True, "chunk_size": chunk_size})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            while True:
                try:
                    msg = await sub.next_msg(timeout=CHUNK_TIMEOUT_S)
                except Exception as err:  # nats.errors.TimeoutError: the server stopped sending
                    raise BackupError(f"snapshot of stream {name}: no chunk for {CHUNK_TIMEOUT_S:.0f} s "
                                      f"after {size} bytes") from err
                if not msg.data:
                    status = (msg.headers or {}).get("Status")
                    if status and status != "204":
                        raise BackupError(f"snapshot of stream {name} stopped by the server: {status} "
                                          f"{(msg.headers or {}).get('Description', '')}".rstrip())
                    break
                out.write(msg.data)
                whole.update(msg.data)
                chunks.append(hashlib.sha256(msg.data).hexdigest())
                size += len(msg.data)
                if msg.reply:
                    await nc.publish(msg.reply, b"")  # flow control: "send more"
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        await sub.unsubscribe()
        tmp.unlink(missing_ok=True)
    return StreamCopy(name, path.name, size, whole.hexdigest(), chunk_size, chunks, answer.get("config") or {},
                      answer.get("state") or {})


async def create_backup(nc: Any, out: Path, streams: list[str] | None = None,
                        chunk_size: int = CHUNK_SIZE) -> dict[str, Any]:
    """Snapshot ``streams`` (default: every stream on the server but :data:`SKIPPED`) into the
    empty or new folder ``out`` and write its manifest last (a folder without one is no backup).
    ``chunk_size``: the server's chunks (and the digests'), also the restore's."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (out / MANIFEST).exists():
        raise BackupError(f"{out} holds a backup already ({MANIFEST}); give another folder")
    present = await stream_names(nc)
    missing = sorted(set(streams or []) - set(present))
    if missing:
        raise BackupError(f"no stream {', '.join(missing)} on the server (it has {', '.join(present) or 'none'})")
    chosen = streams or [name for name in present if name not in SKIPPED]
    copies = [await snapshot_stream(nc, name, out / f"{name}.snapshot", chunk_size) for name in chosen]
    manifest = {"format": FORMAT, "created_at": time.time(),
                "server": _server_version(nc),
                "streams": [copy.to_dict() for copy in copies],
                "skipped": {name: SKIPPED[name] for name in present if name in SKIPPED and name not in chosen}}
    tmp = out / f"{MANIFEST}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out / MANIFEST)
    return manifest


def _server_version(nc: Any) -> str:
    version = nc.connected_server_version
    return f"{version.major}.{version.minor}.{version.patch}"


def read_manifest(src: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((src / MANIFEST).read_text())
    except OSError as err:
        raise BackupError(f"{src} is not a backup: cannot read {MANIFEST} ({err.strerror})") from None
    except ValueError:
        raise BackupError(f"{src / MANIFEST} is not JSON: the backup is corrupted") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{src / MANIFEST}: backup format {manifest.get('format')!r}, this Cairn reads {FORMAT}")
    return manifest


def verify_backup(src: Path) -> dict[str, Any]:
    """The manifest, once every stream file matches its digests (chunk by chunk, then whole)."""
    manifest = read_manifest(src)
    for stream in manifest["streams"]:
        path = src / stream["file"]
        if not path.is_file():
            raise BackupError(f"backup {src}: {stream['file']} (stream {stream['name']}) is missing")
        if path.stat().st_size != stream["size"]:
            raise BackupError(f"backup {src}: {stream['file']} has {path.stat().st_size} bytes, the manifest "
                              f"says {stream['size']}: the backup is corrupted")
        whole = hashlib.sha256()
        with path.open("rb") as f:
            for index, digest in enumerate(stream["chunks"]):
                chunk = f.read(stream["chunk_size"])
                whole.update(chunk)
                if hashlib.sha256(chunk).hexdigest() != digest:
                    start = index * stream["chunk_size"]
                    raise BackupError(
                        f"backup {src}: chunk {index + 1} of {len(stream['chunks'])} of {stream['file']} "
                        f"(bytes {start}-{start + len(chunk) - 1}) does not match its digest: the backup is "
                        "corrupted; nothing was restored")
        if whole.hexdigest() != stream["sha256"]:
            raise BackupError(f"backup {src}: {stream['file']} does not match its digest: the backup is corrupted")
    return manifest


async def restore_stream(nc: Any, stream: dict[str, Any], path: Path, replicas: int | None) -> dict[str, Any]:
    """Restore one stream from its snapshot file; the restored stream's state."""
    config = dict(stream["config"])
    if replicas is not None:
        config["num_replicas"] = replicas
    answer = await _api(nc, f"$JS.API.STREAM.RESTORE.{stream['name']}", {"config": config, "state": stream["state"]})
    deliver = answer["deliver_subject"]
    with path.open("rb") as f:
        while chunk := f.read(stream["chunk_size"]):
            reply = await nc.request(deliver, chunk, timeout=CHUNK_TIMEOUT_S)
            if reply.data:
                raise BackupError(f"restore of stream {stream['name']}: the server refused a chunk: "
                                  f"{reply.data.decode(errors='replace')}")
    done = await nc.request(deliver, b"", timeout=CHUNK_TIMEOUT_S * 4)
    info = json.loads(done.data) if done.data else {}
    if info.get("error"):
        raise BackupError(f"restore of stream {stream['name']} failed on the server: "
                          f"{info['error'].get('description', info['error'])}")
    state: dict[str, Any] = info.get("state") or {}
    want = stream["state"]
    if (state.get("messages"), state.get("last_seq")) != (want.get("messages"), want.get("last_seq")):
        raise BackupError(f"restore of stream {stream['name']}: {state.get('messages')} messages up to "
                          f"sequence {state.get('last_seq')} restored, the backup has {want.get('messages')} "
                          f"up to {want.get('last_seq')}")
    return state


async def restore_backup(nc: Any, src: Path, *, replace: bool = False,
                         replicas: int | None = None) -> dict[str, dict[str, Any]]:
    """Restore every stream of the backup in ``src``; each one's restored state by name.

    Checks first (nothing is restored if one fails): every digest, and that no stream of the
    backup exists on the server; with ``replace``, existing ones are deleted instead."""
    manifest = verify_backup(src)
    present = set(await stream_names(nc))
    clash = [stream["name"] for stream in manifest["streams"] if stream["name"] in present]
    if clash and not replace:
        raise BackupError(f"the server has stream {', '.join(clash)} already; a restore does not overwrite a "
                          "stream (restore into an empty NATS before the services start, or pass --replace "
                          "to delete those streams and restore the backup's)")
    for name in clash:
        await _api(nc, f"$JS.API.STREAM.DELETE.{name}", {})
    restored: dict[str, dict[str, Any]] = {}
    for stream in manifest["streams"]:
        restored[stream["name"]] = await restore_stream(nc, stream, src / stream["file"], replicas)
    return restored

