"""Getting a job's inputs onto this machine: the code snapshot (downloaded by digest, verified,
cached), dataset versions (pulled, verified, cached by manifest digest) and a Python environment
for the job's requirements (a venv cached by the hash of the sorted requirements)."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import site
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cairn.sdk.client import Client
from cairn.sdk.code_snapshot import extract_snapshot


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One preparer per cache entry, across processes (two agents may share a work dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _share_agent_packages(env_dir: Path) -> None:
    """Make the agent's own packages (cairn among them, even an editable install) importable in
    the job's venv, after the venv's own: ``--system-site-packages`` alone only shares the base
    interpreter's, not those of a venv the agent may run in."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    own = env_dir / "lib" / version / "site-packages"
    lines = "".join(f"import site; site.addsitedir({path!r})\n" for path in site.getsitepackages())
    (own / "_cairn_agent_packages.pth").write_text(lines)


class Workspace:
    """Caches under ``root``: code/<digest>.tar.gz, datasets/<manifest digest>/, envs/<hash>/."""

    def __init__(self, root: Path, client: Client) -> None:
        self.root = root
        self.client = client

    def code(self, digest: str, dest: Path) -> Path:
        archive = self.root / "code" / f"{digest}.tar.gz"
        with _locked(archive.with_suffix(".lock")):
            if not archive.exists():
                archive.parent.mkdir(parents=True, exist_ok=True)
                self.client.artifacts.download_blob(digest, archive)  # verified against the digest
        return extract_snapshot(archive, dest)

    def dataset(self, project: str, ref: str) -> tuple[Path, dict[str, Any]]:
        record = self.client.artifacts.dataset_version(project, ref)
        digest = record["manifest"]["digest"]
        target = self.root / "datasets" / digest
        with _locked(self.root / "datasets" / f"{digest}.lock"):
            if not (target / ".cairn-complete").exists():
                tmp = target.with_name(f".{digest}.partial")
                shutil.rmtree(tmp, ignore_errors=True)
                self.client.artifacts.pull_dataset(project, ref, tmp)  # every file verified
                (tmp / ".cairn-complete").write_text(digest)
                shutil.rmtree(target, ignore_errors=True)
                os.replace(tmp, target)
        return target, record

    def python_env(self, requirements: list[str], cwd: Path, log: Any) -> Path | None:
        """A venv with the requirements (sharing this interpreter's packages, so cairn imports);
        None when there are none. Built once per distinct requirement set."""
        if not requirements:
            return None
        key = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:20]
        env_dir = self.root / "envs" / key
        with _locked(self.root / "envs" / f"{key}.lock"):
            if (env_dir / ".cairn-ready").exists():
                log(f"[cairn-agent] python env {key} (cached)\n".encode())
                return env_dir
            shutil.rmtree(env_dir, ignore_errors=True)
            log(f"[cairn-agent] creating python env {key} for {len(requirements)} requirement(s)\n".encode())
            # no pip of its own (ensurepip takes seconds): the agent's pip installs into it (--python)
            done = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                                   str(env_dir)], capture_output=True, timeout=600)
            if done.returncode != 0:
                raise RuntimeError(f"creating the venv failed: {done.stderr.decode(errors='replace')[-2000:]}")
            _share_agent_packages(env_dir)
            steps = [[sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install",
                      "--disable-pip-version-check", *requirements]]
            for argv in steps:
                done = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=3600)
                log(done.stdout + done.stderr)
                if done.returncode != 0:
                    raise RuntimeError(f"preparing the python env failed: {' '.join(argv[:4])} ... "
                                       f"exited with {done.returncode}")
            (env_dir / ".cairn-ready").write_text("\n".join(sorted(requirements)))
        return env_dir
