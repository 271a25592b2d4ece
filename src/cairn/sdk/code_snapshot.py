"""Code snapshots: the exact source a run or job ran with, as one content-addressed archive.

A snapshot is the git commit, branch, remote and uncommitted diff (when the folder is a git work
tree), plus a deterministic tar.gz of the files as they are on disk: tracked files and untracked
files git does not ignore (or, outside git, every file under the folder but caches and venvs). The
same tree always gives the same bytes (sorted names, zeroed times and owners), so identical code
is stored once in the artifact store and two snapshots can be diffed file by file.

Archiving a work tree of thousands of files costs most of a second, and a script that starts runs
in a loop would pay it for each. So the last archives made are kept in a cache
(``$CAIRN_CODE_CACHE``, default ``~/.cache/cairn/code``; ``0`` turns it off), found again by the
tree's *signature*: every listed file's name, size, modification and change times, inode and
executable bit, as git's index tells a clean file from a changed one. A file changed within the
last two seconds keeps a tree out of the cache (a change in the same clock tick could leave its
times as they were), and an archive taken from the cache is checked against its digest.
"""

from __future__ import annotations

import difflib
import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from cairn.core import blake3, fingerprint_file

if TYPE_CHECKING:
    from cairn.sdk.client import Client

MAX_BYTES = int(os.environ.get("CAIRN_CODE_MAX_BYTES", str(200 * 1024 * 1024)))
MAX_INLINE_DIFF = 256 * 1024
SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
             "node_modules", ".tox", "build", "dist"}
# gzip level 6 (zlib's default): on a 14 MB tree of 1,150 files, 0.34 s of CPU against level 9's
# 0.58 s, for an archive 0.4% larger
COMPRESS_LEVEL = 6
CACHE_KEEP = 8  # archives the cache keeps (the newest used)
HOT_S = 2.0  # a file changed this recently keeps its tree out of the cache


class CodeSnapshotError(ValueError):
    """The code cannot be snapshotted (too large, unreadable) or an archive is unsafe to extract."""


@dataclass
class CodeSnapshot:
    """A snapshot made on disk; ``record()`` is what goes into a run's or job's record."""

    archive: Path
    digest: str
    size: int
    files: int
    commit: str | None = None
    branch: str | None = None
    remote: str | None = None
    dirty: bool = False
    diff: str = ""
    untracked: list[str] = field(default_factory=list)
    kind: str | None = None  # "notebook" for a Jupyter notebook (cairn.sdk.notebook); None: files
    notebook: dict[str, Any] | None = None  # how the notebook was found, its name and cell count

    def record(self) -> dict[str, Any]:
        inline = len(self.diff.encode()) <= MAX_INLINE_DIFF
        extra = {"kind": self.kind, "notebook": self.notebook} if self.kind else {}
        return {**extra, "archive_digest": self.digest, "archive_bytes": self.size, "files": self.files,
                "commit": self.commit, "branch": self.branch, "remote": self.remote, "dirty": self.dirty,
                "diff": self.diff if inline else "", "diff_truncated": not inline,
                "untracked": self.untracked}


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _strip_credentials(url: str | None) -> str | None:
    """``https://user:secret@host/x`` -> ``https://host/x``: a remote URL never carries a secret."""
    if not url or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.split('@', 1)[1]}"


def _listed_files(root: Path) -> tuple[list[str], bool]:
    """Relative POSIX paths to archive, and whether the list came from git."""
    listed = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed is not None:
        names = sorted({n for n in listed.split("\0") if n and (root / n).is_file()})
        return names, True
    names = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_file() and not full.is_symlink():
                names.append(full.relative_to(root).as_posix())
    return sorted(names), False


def _too_large(root: Path) -> CodeSnapshotError:
    return CodeSnapshotError(f"the code under {root} is over {MAX_BYTES} bytes; add large files to "
                             ".gitignore or raise CAIRN_CODE_MAX_BYTES")


def _write_archive(root: Path, names: list[str], dest: Path) -> int:
    total = 0
    with open(dest, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=COMPRESS_LEVEL) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in names:
            full = root / name
            size = full.stat().st_size
            total += size
            if total > MAX_BYTES:
                raise _too_large(root)
            info = tarfile.TarInfo(name)
            info.size = size
            info.mode = 0o755 if os.access(full, os.X_OK) else 0o644
            with open(full, "rb") as f:
                tar.addfile(info, f)
    return total


def cache_dir() -> Path | None:
    """Where archives are kept for the next snapshot of the same tree; None when turned off."""
    configured = os.environ.get("CAIRN_CODE_CACHE")
    if configured is not None and configured.strip().lower() in ("", "0", "off", "false", "no"):
        return None
    return Path(configured) if configured else Path.home() / ".cache" / "cairn" / "code"


def _signature(root: Path, names: list[str]) -> tuple[str, int] | None:
    """The tree's signature and its total size; None while a file is hot (changed in the last
    ``HOT_S``) or unreadable."""
    lines, total = [], 0
    hot_from = time.time_ns() - int(HOT_S * 1e9)
    for name in names:
        try:
            st = os.stat(root / name)
        except OSError:
            return None
        if max(st.st_mtime_ns, st.st_ctime_ns) >= hot_from:
            return None
        total += st.st_size
        lines.append(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\0{st.st_mode & 0o111}")
    text = f"{root}\n{COMPRESS_LEVEL}\n" + "\n".join(lines)
    return blake3(text.encode()).hex(), total


def _place(source: Path, dest: Path) -> None:
    """``source`` at ``dest``: a hard link where the file system allows it, else a copy."""
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def _from_cache(cache: Path, signature: str, dest_dir: Path) -> tuple[str, Path] | None:
    """(digest, archive in dest_dir) of the tree with this signature, when the cache holds it whole."""
    try:
        digest = json.loads((cache / f"{signature}.json").read_text())["digest"]
        kept = cache / f"{digest}.tar.gz"
        if not isinstance(digest, str) or fingerprint_file(kept) != digest:
            return None
        archive = dest_dir / f"{digest}.tar.gz"
        if not archive.exists():
            _place(kept, archive)
        os.utime(kept)  # used: the last to be evicted
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return digest, archive


def _into_cache(cache: Path, signature: str, digest: str, archive: Path) -> None:
    """Keep ``archive`` for the next snapshot of this tree, and only the newest ``CACHE_KEEP``."""
    try:
        cache.mkdir(parents=True, exist_ok=True, mode=0o700)  # it holds the code: its owner's alone
        kept = cache / f"{digest}.tar.gz"
        if not kept.exists():
            part = cache / f".{digest}.{os.getpid()}.part"
            _place(archive, part)
            os.replace(part, kept)
        entry = cache / f".{signature}.{os.getpid()}.part"
        entry.write_text(json.dumps({"digest": digest}))
        os.replace(entry, cache / f"{signature}.json")
        archives = sorted(cache.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in archives[CACHE_KEEP:]:
            old.unlink(missing_ok=True)
        live = {p.name.removesuffix(".tar.gz") for p in archives[:CACHE_KEEP]}
        for index in cache.glob("*.json"):
            if index.stat().st_mtime < time.time() - 60 and json.loads(index.read_text()).get("digest") not in live:
                index.unlink(missing_ok=True)
    except (OSError, ValueError):  # a cache that cannot be written is only slower
        pass


def snapshot_code(path: str | os.PathLike[str], dest_dir: str | os.PathLike[str]) -> CodeSnapshot:
    """Snapshot the code under ``path`` into an archive in ``dest_dir`` (named by its digest)."""
    root = Path(path).resolve()
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is not None:
        root = Path(top.strip())
    names, in_git = _listed_files(root)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    cache = cache_dir()
    signed = _signature(root, names) if cache is not None else None
    if signed is not None and signed[1] > MAX_BYTES:
        raise _too_large(root)
    found = _from_cache(cache, signed[0], dest_dir) if cache is not None and signed is not None else None
    if found is not None:
        digest, archive = found
    else:
        tmp = dest_dir / f".code-{os.getpid()}.tar.gz"
        _write_archive(root, names, tmp)
        digest = fingerprint_file(tmp)
        archive = dest_dir / f"{digest}.tar.gz"
        os.replace(tmp, archive)
        if cache is not None and signed is not None:
            _into_cache(cache, signed[0], digest, archive)
    snap = CodeSnapshot(archive=archive, digest=digest, size=archive.stat().st_size, files=len(names))
    if in_git:
        snap.commit = (_git(root, "rev-parse", "HEAD") or "").strip() or None
        branch = (_git(root, "rev-parse", "--abbrev-ref", "HEAD") or "").strip()
        snap.branch = branch if branch and branch != "HEAD" else None
        snap.remote = _strip_credentials((_git(root, "remote", "get-url", "origin") or "").strip() or None)
        snap.diff = _git(root, "diff", "HEAD", "--no-color", "--no-ext-diff") or ""
        untracked = _git(root, "ls-files", "-z", "--others", "--exclude-standard") or ""
        snap.untracked = sorted(n for n in untracked.split("\0") if n)
        snap.dirty = bool(snap.diff or snap.untracked)
    return snap


def upload_snapshot(client: Client, project: str, snap: CodeSnapshot) -> dict[str, Any]:
    """Upload the archive into ``project`` (skipped when the project has uploaded it before, so
    its runs and agents may read it); returns the record."""
    if client.artifacts.missing(project, [snap.digest]):
        client.artifacts.upload_blob(project, snap.archive, snap.digest)
    return snap.record()


def _safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = []
    for member in tar.getmembers():
        parts = PurePosixPath(member.name).parts
        if not member.isfile() or member.name.startswith("/") or ".." in parts:
            raise CodeSnapshotError(f"unsafe entry {member.name!r} in code archive")
        members.append(member)
    return members


def extract_snapshot(archive: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Unpack a snapshot archive under ``dest`` (regular files only, no path leaves ``dest``)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        for member in _safe_members(tar):
            target = dest / member.name
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            with src, open(target, "wb") as out:
                out.write(src.read())
            os.chmod(target, member.mode & 0o755)
    return dest


def read_snapshot(archive: str | os.PathLike[str]) -> dict[str, bytes]:
    """File name -> bytes for every file in a snapshot archive."""
    with tarfile.open(archive, "r:gz") as tar:
        out = {}
        for member in _safe_members(tar):
            src = tar.extractfile(member)
            assert src is not None
            out[member.name] = src.read()
        return out


def diff_snapshots(old: dict[str, bytes], new: dict[str, bytes], *, label_old: str = "a",
                   label_new: str = "b") -> str:
    """A unified diff between two snapshots (as from :func:`read_snapshot`); binary files by name."""
    out = io.StringIO()
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if name.endswith(".ipynb"):  # cell by cell, not JSON noise
            from cairn.sdk.notebook_diff import diff_notebook_files

            out.write(diff_notebook_files(a, b, f"{label_old}/{name}" if a is not None else "/dev/null",
                                          f"{label_new}/{name}" if b is not None else "/dev/null"))
            continue
        try:
            a_lines = (a or b"").decode().splitlines(keepends=True)
            b_lines = (b or b"").decode().splitlines(keepends=True)
        except UnicodeDecodeError:
            out.write(f"Binary files {label_old}/{name} and {label_new}/{name} differ\n")
            continue
        out.writelines(difflib.unified_diff(a_lines, b_lines,
                                            f"{label_old}/{name}" if a is not None else "/dev/null",
                                            f"{label_new}/{name}" if b is not None else "/dev/null"))
    return out.getvalue()
