"""Blobs, datasets and run artifacts from Python: ``client.artifacts`` (an :class:`Artifacts`).

Uploads go into a project: they ask the server which blobs that project has not uploaded yet
and send only those, streamed from disk (a blob another project stored is sent again: sending the
bytes is what lets a project read a blob; docs/security.md). Downloads land in a temp file next to
their destination, are hashed, and are renamed into place only if they match their digest. On an
S3 store the bytes go straight to and from the bucket with presigned URLs, and many files move
through a bounded pool (:mod:`cairn.sdk.transfers`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from cairn.core import Manifest, fingerprint_file, fingerprint_tree
from cairn.core.manifest import check_relative_path
from cairn.sdk import bundles
from cairn.sdk.client import reaching
from cairn.sdk.transfers import WORKERS, Direct, file_chunks, in_pool, locked, retrying

if TYPE_CHECKING:
    from cairn.sdk.client import Client

Progress = Callable[[int], None] | None
CHUNK = 1 << 20
BASE = "/api/v1/artifacts"
_DIRECT_LOCK = threading.Lock()
# Smaller uploads go through the gateway even when the store presigns: a presigned upload costs
# three requests and, on the server, a read-back and a copy; for a small file those cost more
# than the gateway's hop saves (measured on SeaweedFS: benchmarks/README.md, "Artifacts vs MLflow").
DIRECT_UPLOAD_MIN = 8 << 20  # smaller files go through the gateway: a plan would cost a round trip more


class IntegrityError(ValueError):
    """Downloaded bytes do not match their digest, or a manifest would write outside its target."""


@dataclass
class PushResult:
    """What a push did: the manifest, the version record and how much was actually sent."""

    manifest: Manifest
    record: dict[str, Any]
    uploaded_files: int
    uploaded_bytes: int


def _q(part: str) -> str:
    return quote(part, safe="")


def split_ref(ref: str) -> tuple[str, str]:
    """``name@v3`` -> ("name", "3"); ``name`` -> ("name", "latest")."""
    name, _, version = ref.partition("@")
    version = version.lstrip("v") or "latest"
    return name, version


class Artifacts:
    """Artifact-store calls made through a :class:`~cairn.sdk.client.Client`."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.http: httpx.Client = client._http

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.request(method, f"{BASE}{path}", **kwargs)

    def _direct(self) -> Direct | None:
        """The presigned-transfer client, or None while the store is not known to presign (file
        system stores never do). Remembered on the Client: the store's answer does not change."""
        return self.client.__dict__.get("_cairn_direct")

    def _learn_mode(self, plan: dict[str, Any]) -> Direct | None:
        if plan.get("mode") != "presigned":
            self.client.__dict__["_cairn_presigns"] = False
            return None
        return self._direct_client()

    def _direct_client(self) -> Direct:
        with _DIRECT_LOCK:  # pool threads may learn it at the same time: make one
            direct = self._direct()
            if direct is None:
                direct = self.client.__dict__["_cairn_direct"] = Direct(self.client.retries)
                weakref.finalize(self.client, direct.close)
        return direct

    def _plain_http(self) -> httpx.Client:
        """An HTTP client without Cairn's headers, for signed URLs (their signature authorizes)."""
        return self._direct_client().http

    def _presigns(self) -> bool:
        return self.client.__dict__.get("_cairn_presigns", True)

    # --- blobs ---------------------------------------------------------------------------------

    def missing(self, project: str, digests: list[str]) -> list[str]:
        """The digests ``project`` has not uploaded yet (whatever other projects stored)."""
        out: list[str] = []
        for start in range(0, len(digests), 50_000):
            out += self._call("POST", f"/projects/{_q(project)}/blobs/missing",
                              json={"digests": digests[start:start + 50_000]})["missing"]
        return out

    def exists(self, digest: str) -> bool:
        """Whether you may read the blob: one of your projects uploaded it and it is stored."""
        with reaching(self.client.url):
            return self.http.head(f"{BASE}/blobs/{digest}").status_code == 200

    def upload_blob(self, project: str, path: str | os.PathLike[str], digest: str | None = None,
                    progress: Progress = None) -> dict[str, Any]:
        """Stream one file into ``project`` (its digest is computed if not given)."""
        path = Path(path)
        digest = digest or fingerprint_file(path)
        size = path.stat().st_size
        where = f"{BASE}/projects/{_q(project)}/blobs/{digest}"
        if size >= DIRECT_UPLOAD_MIN and self._presigns():  # small files: one PUT through the gateway
            plan = self._call("POST", f"/projects/{_q(project)}/blobs/{digest}/upload-plan", json={"size": size})
            direct = self._learn_mode(plan)
            if direct is not None:
                commit = direct.upload(plan, path, size, progress)
                return self._call("POST", f"/projects/{_q(project)}/blobs/{digest}/commit", json=commit)

        def send() -> httpx.Response:
            return self.http.put(where, content=file_chunks(path, progress),
                                 headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
                                 timeout=httpx.Timeout(60.0, write=None))

        with reaching(self.client.url):
            return self.client._answer(retrying(self.client.retries, send))

    def download_blob(self, digest: str, dest: str | os.PathLike[str], progress: Progress = None,
                      size: int | None = None) -> Path:
        """Download a blob to ``dest`` (temp file + verify + rename); IntegrityError on mismatch.
        A blob known to be small (``size``) is read through the gateway in one request instead of
        asking for a transfer plan first."""
        dest = Path(dest)
        fd, name = tempfile.mkstemp(prefix=".cairn-", dir=dest.parent)
        tmp = Path(name)
        try:
            small = size is not None and size < DIRECT_UPLOAD_MIN
            plan = self._call("GET", f"/blobs/{digest}/download-plan") if not small and self._presigns() else {}
            direct = self._learn_mode(plan) if plan else None
            with os.fdopen(fd, "wb") as out:
                if direct is not None:
                    direct.download(plan["url"], out, progress)
                else:
                    self._download_proxied(digest, out, progress)
            actual = fingerprint_file(tmp)
            if actual != digest:
                raise IntegrityError(f"downloaded bytes for {dest} hash to {actual}, not {digest}")
            os.replace(tmp, dest)
            return dest
        finally:
            tmp.unlink(missing_ok=True)

    def _download_proxied(self, digest: str, out: Any, progress: Progress) -> None:
        with reaching(self.client.url), self.http.stream("GET", f"{BASE}/blobs/{digest}",
                                                          timeout=httpx.Timeout(60.0)) as resp:
            if resp.status_code >= 400:
                resp.read()
                self.client._answer(resp)
            for chunk in resp.iter_raw(CHUNK):
                out.write(chunk)
                if progress is not None:
                    progress(len(chunk))

    def read_range(self, digest: str, start: int, end: int) -> bytes:
        """Bytes ``start..end`` (inclusive) of a blob, verified server-side before serving."""
        with reaching(self.client.url):
            resp = self.http.get(f"{BASE}/blobs/{digest}", headers={"Range": f"bytes={start}-{end}"})
        if resp.status_code >= 400:
            self.client._answer(resp)
        return resp.content

    def upload_tree(self, project: str, manifest: Manifest, root: Path,
                    progress: Callable[[int, int], None] | None = None,
                    workers: int = WORKERS) -> tuple[int, int]:
        """Upload the manifest's files ``project`` has not uploaded, ``workers`` at a time; returns
        (files, bytes) sent. ``progress(advance_bytes, total_bytes_to_send)``, from any thread."""
        by_digest = {e.digest: e for e in manifest.entries if e.kind == "file"}
        missing = self.missing(project, sorted(by_digest))
        total = sum(by_digest[d].size for d in missing)
        advance = locked(progress, total)

        def source(digest: str) -> Path:
            return root / by_digest[digest].path if root.is_dir() else root

        # small files in bundles (a request per bundle, not per file), the rest one by one
        small = [(d, source(d), by_digest[d].size) for d in missing if bundles.bundled(by_digest[d].size)]
        bundles.upload(self, project, small, advance, min(workers, bundles.BUNDLE_WORKERS))
        large = [d for d in missing if not bundles.bundled(by_digest[d].size)]
        if large and self._presigns() and self._direct() is None:
            # the first upload learns whether the store presigns, before the pool starts
            first, large = large[0], large[1:]
            self.upload_blob(project, source(first), first, advance)
        in_pool(large, lambda digest: self.upload_blob(project, source(digest), digest, advance), workers)
        return len(missing), sum(by_digest[d].size for d in missing)

    # --- datasets ------------------------------------------------------------------------------

    def push_dataset(self, project: str, name: str, path: str | os.PathLike[str], *, description: str = "",
                     progress: Callable[[int, int], None] | None = None, workers: int = WORKERS) -> PushResult:
        """Fingerprint a directory, upload the missing blobs (``workers`` at a time), create a version."""
        root = Path(path)
        manifest = fingerprint_tree(root)
        files, sent = self.upload_tree(project, manifest, root, progress, workers)
        record = self._call("POST", f"/projects/{_q(project)}/datasets/{_q(name)}/versions",
                            json={"manifest": manifest.as_dict(), "description": description})
        return PushResult(manifest, record, files, sent)

    def list_datasets(self, project: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/projects/{_q(project)}/datasets")["datasets"]

    def dataset(self, project: str, name: str) -> dict[str, Any]:
        return self._call("GET", f"/projects/{_q(project)}/datasets/{_q(name)}")

    def dataset_version(self, project: str, ref: str) -> dict[str, Any]:
        """A version and its manifest: ``name@v3`` or ``name`` (latest)."""
        name, version = split_ref(ref)
        return self._call("GET", f"/projects/{_q(project)}/datasets/{_q(name)}/versions/{_q(version)}")

    def diff(self, project: str, ref_a: str, ref_b: str) -> dict[str, Any]:
        name_a, va = split_ref(ref_a)
        name_b, vb = split_ref(ref_b)
        if name_a != name_b:
            raise ValueError(f"diff compares versions of one dataset, got {name_a!r} and {name_b!r}")
        if va == "latest":
            raise ValueError(f"name the first version explicitly, e.g. {name_a}@v1")
        params = {"from": va} | ({} if vb == "latest" else {"to": vb})
        return self._call("GET", f"/projects/{_q(project)}/datasets/{_q(name_a)}/diff", params=params)

    def pull_dataset(self, project: str, ref: str, dest: str | os.PathLike[str], *,
                     progress: Callable[[int, int], None] | None = None, workers: int = WORKERS) -> dict[str, Any]:
        """Restore a version's exact bytes under ``dest`` (verified, ``workers`` files at a time);
        returns the version record."""
        record = self.dataset_version(project, ref)
        manifest = Manifest.from_dict(record["manifest"])  # re-checks paths and the digest
        restore_tree(self, manifest, Path(dest), progress, workers)
        return record

    # --- runs ----------------------------------------------------------------------------------

    def log_artifact(self, project: str, run_id: str, path: str | os.PathLike[str], name: str | None = None,
                     kind: str | None = None) -> dict[str, Any]:
        """Upload a file or directory and record it on the run under ``name``."""
        path = Path(path)
        if path.is_dir():
            manifest = fingerprint_tree(path)
            self.upload_tree(project, manifest, path)
            digest = self._call("POST", f"/projects/{_q(project)}/manifests",
                                json={"manifest": manifest.as_dict()})["digest"]
            kind = kind or "directory"
        else:
            digest = fingerprint_file(path)
            if self.missing(project, [digest]):
                self.upload_blob(project, path, digest)
            kind = kind or "file"
        return self._call("POST", f"/projects/{_q(project)}/runs/{_q(run_id)}/artifacts",
                          json={"name": name or path.name, "digest": digest, "kind": kind})

    def list_artifacts(self, project: str, run_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/projects/{_q(project)}/runs/{_q(run_id)}/artifacts")["artifacts"]

    def download_artifact(self, record: dict[str, Any], dest: str | os.PathLike[str]) -> Path:
        """Restore an artifact record (file to ``dest``, directory under ``dest``)."""
        dest = Path(dest)
        if record["kind"] == "file":
            dest.parent.mkdir(parents=True, exist_ok=True)
            return self.download_blob(record["digest"], dest)
        manifest = Manifest.from_dict(self._call("GET", f"/manifests/{record['digest']}"))
        restore_tree(self, manifest, dest, None)
        return dest

    def use_dataset(self, project: str, run_id: str, ref: str) -> dict[str, Any]:
        return self._call("POST", f"/projects/{_q(project)}/runs/{_q(run_id)}/datasets", json={"dataset": ref})

    def gc(self, grace_seconds: float | None = None, dry_run: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = {"dry_run": dry_run}
        if grace_seconds is not None:
            params["grace_seconds"] = grace_seconds
        return self._call("POST", "/admin/gc", params=params)

    def verify(self, digests: list[str] | None = None) -> dict[str, Any]:
        """Site admins: hash stored blobs (all, or these) and list the ``corrupt`` and ``missing``."""
        return self._call("POST", "/admin/verify", params={"digest": digests} if digests else None)


def _inside(root: Path, path: Path) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(root) + os.sep)


def restore_tree(api: Artifacts, manifest: Manifest, dest: Path,
                 progress: Callable[[int, int], None] | None, workers: int = WORKERS) -> None:
    """Write every manifest entry under ``dest``; refuses anything that would land outside it
    (unsafe paths, parents that are links, links pointing out of the tree)."""
    dest.mkdir(parents=True, exist_ok=True)
    present: dict[str, Path] = {}  # digest -> a file under dest that has its bytes
    wanted: dict[str, Path] = {}  # digest -> the first target to download it to
    copies: list[tuple[str, Path]] = []
    for entry in manifest.entries:
        check_relative_path(entry.path)
        target = dest / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not _inside(dest, target.parent / "x"):
            raise IntegrityError(f"{entry.path!r} would be written outside {dest}")
        if entry.kind == "symlink":
            continue
        if target.is_file() and not target.is_symlink() and target.stat().st_size == entry.size \
                and fingerprint_file(target) == entry.digest:
            present.setdefault(entry.digest, target)
        elif entry.digest not in wanted:
            wanted[entry.digest] = target
        else:
            copies.append((entry.digest, target))
    sizes = {e.digest: e.size for e in manifest.entries if e.kind == "file"}
    advance = locked(progress, sum(sizes[d] for d in wanted if d not in present))
    fetch = [(d, t) for d, t in wanted.items() if d not in present]
    small = [(d, t, sizes[d]) for d, t in fetch if bundles.bundled(sizes[d])]
    # small files in bundles; the rest, and what a short bundle left out, one by one (each
    # download then answers with its own error)
    alone = [(d, t) for d, t in fetch if not bundles.bundled(sizes[d])]
    alone += [(d, t) for d, t, _ in bundles.download(api, small, advance, min(workers, bundles.BUNDLE_WORKERS))]
    in_pool(alone, lambda item: api.download_blob(item[0], item[1], advance, size=sizes[item[0]]), workers)
    for digest, target in [(d, t) for d, t in wanted.items() if d in present] + copies:
        shutil.copyfile(present.get(digest) or wanted[digest], target)
    for entry in manifest.entries:
        if entry.kind != "symlink":
            continue
        assert entry.target is not None
        link = dest / entry.path
        if os.path.isabs(entry.target) or not _inside(dest, link.parent / entry.target):
            raise IntegrityError(f"link {entry.path!r} -> {entry.target!r} points outside {dest}")
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(entry.target, link)
