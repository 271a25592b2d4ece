"""A pushed commit -> the pipeline file at that commit and a code archive of its tree.

The service keeps one bare mirror per clone URL under ``<data dir>/pipelines/git/`` and fetches
into it with the ``git`` program (branches and tags, then checks the commit is there). Clone URLs
are local paths, ``file://`` or ``https://``; an https host is resolved once through the egress
guard (globally routable addresses only) and git is pinned to the checked address with
``http.curloptResolve``, so git's own lookup cannot be rebound to a private address.

The archive is the format agents unpack (``cairn.sdk.code_snapshot``): a tar.gz of regular files,
sorted by name, times and owners zeroed, mode 0755 for executables else 0644, built from git's
objects, not a checkout. Its bytes depend only on the tree, so two commits with the same tree
give the same archive and digest: the digest is the run's code digest (``tree_digest``) and the
step cache's key part for code.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cairn.core.fingerprint import blake3
from cairn.kernel.egress import Egress, parse_target
from cairn.kernel.errors import InvalidInput, Unavailable

MAX_ARCHIVE_BYTES = int(os.environ.get("CAIRN_CODE_MAX_BYTES", str(200 * 1024 * 1024)))
GIT_TIMEOUT_S = 300
SHA_RE_LEN = (40, 64)


@dataclass(frozen=True)
class CodeArchive:
    data: bytes
    digest: str  # BLAKE3 of the archive bytes (the artifact store's address)
    files: int

    def record(self, *, commit: str, branch: str | None, repo: str) -> dict[str, Any]:
        """The run's code record (``pipeline_run.started``'s ``code``)."""
        return {"archive_digest": self.digest, "tree_digest": self.digest, "commit": commit, "branch": branch,
                "repo": repo}


class GitMirrors:
    """Bare mirrors of the repositories definitions name, one per clone URL."""

    def __init__(self, root: Path, egress: Egress, *, allow_local: bool = False) -> None:
        self.root = root
        self.egress = egress
        self.allow_local = allow_local
        self._locks: dict[str, asyncio.Lock] = {}

    def path_for(self, clone_url: str) -> Path:
        return self.root / hashlib.sha256(clone_url.encode()).hexdigest()[:32]

    async def fetch(self, clone_url: str, commit: str) -> Path:
        """The mirror of ``clone_url`` holding ``commit`` (fetched unless it is there already)."""
        if len(commit) not in SHA_RE_LEN or any(c not in "0123456789abcdef" for c in commit):
            raise InvalidInput(f"commit {commit!r} is not a full hexadecimal commit id", details={"field": "after"})
        repo = self.path_for(clone_url)
        lock = self._locks.setdefault(str(repo), asyncio.Lock())
        async with lock:
            if not (repo / "HEAD").exists():
                repo.parent.mkdir(parents=True, exist_ok=True)
                await _git(None, "init", "--bare", "--quiet", str(repo))
            if await _has_commit(repo, commit):
                return repo
            config = await self._pinning(clone_url)
            await _git(repo, *config, "fetch", "--quiet", "--prune", "--no-write-fetch-head", "--", clone_url,
                       "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
            if not await _has_commit(repo, commit):
                raise InvalidInput(f"commit {commit} is not in {_safe(clone_url)} after fetching its branches and tags",
                                   details={"field": "after"})
            return repo

    async def _pinning(self, clone_url: str) -> list[str]:
        if clone_url.startswith("/") or clone_url.startswith("file://"):
            if not self.allow_local:
                raise InvalidInput("local repositories are off on this site (CAIRN_PIPELINES_ALLOW_LOCAL_REPOS)",
                                   details={"field": "repo.clone_url"})
            return ["-c", "protocol.file.allow=always"]
        if not clone_url.startswith("https://"):
            raise InvalidInput("clone URLs are https://, or local where the site allows them",
                               details={"field": "repo.clone_url"})
        target = parse_target(clone_url)
        addresses = await self.egress.resolve(target)  # InvalidInput naming the refused address
        host = urlsplit(clone_url).hostname or target.host
        address = str(addresses[0])
        pinned = f"[{address}]" if ":" in address else address
        return ["-c", f"http.curloptResolve={host}:{target.port}:{pinned}", "-c", "protocol.allow=never",
                "-c", "protocol.https.allow=always"]


async def read_file(repo: Path, commit: str, path: str) -> str | None:
    """``path``'s text at ``commit``, or None when the commit has no such file."""
    try:
        out = await _git(repo, "show", f"{commit}:{path}", binary=True)
    except Unavailable:
        return None
    return out.decode("utf-8", errors="replace")


async def archive(repo: Path, commit: str) -> CodeArchive:
    return await asyncio.to_thread(_archive, repo, commit)


def _archive(repo: Path, commit: str) -> CodeArchive:
    listing = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "-z", "--full-tree", commit],
                             capture_output=True, timeout=GIT_TIMEOUT_S, check=True).stdout
    entries: list[tuple[str, bool, str]] = []
    for line in listing.split(b"\0"):
        if not line:
            continue
        meta, raw_name = line.split(b"\t", 1)
        mode, kind, raw_oid = meta.split(b" ")
        if kind == b"blob" and mode in (b"100644", b"100755"):  # no symlinks, no submodules
            entries.append((raw_name.decode("utf-8", errors="surrogateescape"), mode == b"100755", raw_oid.decode()))
    entries.sort()
    raw = io.BytesIO()
    total = 0
    with subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE) as batch, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        assert batch.stdin is not None and batch.stdout is not None
        for name, executable, oid in entries:
            batch.stdin.write(oid.encode() + b"\n")
            batch.stdin.flush()
            header = batch.stdout.readline().split()
            size = int(header[2])
            total += size
            if total > MAX_ARCHIVE_BYTES:
                batch.kill()
                raise InvalidInput(f"commit {commit}'s tree is over {MAX_ARCHIVE_BYTES} bytes; raise "
                                   "CAIRN_CODE_MAX_BYTES or keep large files out of the repository")
            body = batch.stdout.read(size)
            batch.stdout.read(1)  # the newline after each object
            info = tarfile.TarInfo(name)
            info.size = size
            info.mode = 0o755 if executable else 0o644
            tar.addfile(info, io.BytesIO(body))
        batch.stdin.close()
    data = raw.getvalue()
    return CodeArchive(data, blake3(data, device="cpu").hex(), len(entries))


async def _has_commit(repo: Path, commit: str) -> bool:
    try:
        await _git(repo, "cat-file", "-e", f"{commit}^{{commit}}")
    except Unavailable:
        return False
    return True


async def _git(repo: Path | None, *args: str, binary: bool = False) -> bytes:
    cmd = ["git", *(["-C", str(repo)] if repo is not None else []), *args]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "/bin/false", "GIT_CONFIG_NOSYSTEM": "1"}
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), GIT_TIMEOUT_S)
    except asyncio.TimeoutError:
        proc.kill()
        raise Unavailable(f"git {args[0]} took over {GIT_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise Unavailable(f"git {args[-1] if args[0] == '-c' else args[0]} failed: "
                          f"{err.decode(errors='replace').strip()[:500]}")
    return out


def _safe(url: str) -> str:
    """A clone URL without credentials, for messages."""
    parts = urlsplit(url)
    return url if not parts.password and not parts.username else url.replace(parts.netloc, parts.hostname or "")
