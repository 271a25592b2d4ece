"""Artifacts side by side with MLflow's artifact proxy, in one run (issue 24's targets).

Starts MLflow's tracking server (side venv, benchmarks/mlflow_side.py; artifacts proxied from a
local folder, `--artifacts-destination`; for ``s3``, from a bucket of the same SeaweedFS) and Cairn (nats-server + every service, as the tests do)
once per backend: ``fs`` (bytes through the gateway), ``fs-direct`` (the file system with direct
transfer URLs of the artifacts service, as ``cairn up`` on loopback runs it) and ``s3`` (a real SeaweedFS, ``weed mini``; the SDK then moves bytes with
presigned URLs straight to the bucket). Each round, for each case, Cairn and MLflow run one after
the other, the order alternating by round, so load from other jobs falls on both:

- ``big up``/``big down``: one 256 MiB file (``--big-mib``). Cairn: ``upload_blob`` /
  ``download_blob`` (the SDK hashes a download before keeping it); MLflow: one PUT / streamed GET
  of ``/api/2.0/mlflow-artifacts/artifacts/<path>`` (what its client sends), written to disk.
- ``small up``/``small down``: 200 files of 1 MiB (``--small``). Cairn: ``upload_tree`` /
  ``restore_tree`` (bundles of 16 MiB, 4 in flight; the manifest made before the clock starts);
  MLflow: one request per file from a pool of 8 threads.

Cairn uploads go into a fresh project each round, so every byte is sent again. MB/s = 10^6
bytes/s; the median of ``--rounds``; ratio = Cairn / MLflow; the load average is printed before
and after. ``--hop`` also times a 256 MiB download through the gateway and straight from the
artifacts service (fs), the cost of the gateway's hop. For ``s3`` the small files are also moved
with boto3 alone (8 threads, straight to SeaweedFS, ``[boto3 only]``), and so is the big file
(boto3's transfer manager, its default parts and threads): the store's own ceiling, which neither
server can pass.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "tests"))
sys.path.insert(0, str(ROOT.parent / "tests" / "artifacts"))
from mlflow_side import mlflow_server  # noqa: E402
from seaweed import SeaweedS3  # noqa: E402

from cairn.core import Manifest, fingerprint_file, fingerprint_tree  # noqa: E402
from cairn.sdk import Client  # noqa: E402
from cairn.sdk.artifacts import Artifacts, restore_tree  # noqa: E402
from cairn.sdk.transfers import file_chunks  # noqa: E402

from platform_harness import Platform  # noqa: E402

MIB = 1 << 20
MLFLOW_ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


def random_file(path: Path, mib: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(MIB))


def timed(fn: Callable[[], object], nbytes: int) -> float:
    start = time.perf_counter()
    fn()
    return nbytes / (time.perf_counter() - start) / 1e6


class MlflowSide:
    """MLflow's proxied artifact routes, driven the way its HTTP artifact repository does."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=httpx.Timeout(120.0, write=None),
                                 limits=httpx.Limits(max_connections=16))

    def put(self, rel: str, path: Path) -> None:
        resp = self.http.put(f"{MLFLOW_ARTIFACTS}/{rel}", content=file_chunks(path, None),
                             headers={"Content-Length": str(path.stat().st_size)})
        resp.raise_for_status()

    def get(self, rel: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.http.stream("GET", f"{MLFLOW_ARTIFACTS}/{rel}") as resp, open(dest, "wb") as out:
            resp.raise_for_status()
            for chunk in resp.iter_raw(MIB):
                out.write(chunk)

    def pool(self, work: Callable[[Path], None], files: list[Path]) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(work, files))


Case = tuple[str, Callable[[], object], Callable[[], object], int]


def round_cases(args: argparse.Namespace, art: Artifacts, mlflow: MlflowSide, project: str, out: Path,
                tag: str, big: Path, big_digest: str, manifest: Manifest, small_root: Path,
                small_files: list[Path]) -> list[Case]:
    """One round's four cases: (name, Cairn's transfer, MLflow's transfer, bytes moved)."""
    big_bytes = big.stat().st_size
    small_bytes = sum(p.stat().st_size for p in small_files)
    return [
        (f"{args.big_mib} MiB up", lambda: art.upload_blob(project, big, big_digest),
         lambda: mlflow.put(f"{tag}/big.bin", big), big_bytes),
        (f"{args.big_mib} MiB down", lambda: art.download_blob(big_digest, out / "cairn-big.bin"),
         lambda: mlflow.get(f"{tag}/big.bin", out / "mlflow-big.bin"), big_bytes),
        (f"{args.small} x 1 MiB up", lambda: art.upload_tree(project, manifest, small_root),
         lambda: mlflow.pool(lambda p: mlflow.put(f"{tag}/small/{p.name}", p), small_files), small_bytes),
        (f"{args.small} x 1 MiB down", lambda: restore_tree(art, manifest, out / "cairn-small", None),
         lambda: mlflow.pool(lambda p: mlflow.get(f"{tag}/small/{p.name}", out / "mlflow-small" / p.name),
                             small_files), small_bytes)]


def run_backend(backend: str, args: argparse.Namespace, work: Path, mlflow_local: MlflowSide,
                results: dict[tuple[str, str, str], list[float]]) -> None:
    big = work / "big.bin"
    small_root = work / "small"
    small_files = sorted(small_root.rglob("*.bin"))
    big_digest = fingerprint_file(big)
    manifest: Manifest = fingerprint_tree(small_root)
    env: dict[str, str] = {}
    server = None
    stack = ExitStack()
    mlflow = mlflow_local
    if backend == "s3":
        server = SeaweedS3(work / f"seaweed-{backend}", bucket="bench").start()
        stack.callback(server.stop)  # also when MLflow's or Cairn's start fails below
        env = {"CAIRN_ARTIFACTS_BACKEND": "s3", "CAIRN_ARTIFACTS_S3_ENDPOINT": server.endpoint,
               "CAIRN_ARTIFACTS_S3_BUCKET": "bench", "CAIRN_ARTIFACTS_S3_ACCESS_KEY": "bench",
               "CAIRN_ARTIFACTS_S3_SECRET_KEY": "bench"}
        # MLflow's proxy stores into the same SeaweedFS (a bucket of its own), so both sides pay
        # the same object store
        server.client().create_bucket(Bucket="bench-mlflow")
        on_s3 = stack.enter_context(mlflow_server(
            work / "mlflow-s3", artifacts_destination="s3://bench-mlflow/artifacts",
            env={"MLFLOW_S3_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": "bench",
                 "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}))
        mlflow = MlflowSide(on_s3.url)
    # fs-direct: the file system backend with direct transfer URLs (what `cairn up` on loopback runs)
    with stack:
        plat = Platform(work / f"platform-{backend}", extra_env=env,
                        direct_artifacts=backend == "fs-direct").start()
        _rounds(args, plat, mlflow, server, work, big, big_digest, manifest, small_root, small_files, results,
                backend)


def _rounds(args: argparse.Namespace, plat: Platform, mlflow: MlflowSide, server: SeaweedS3 | None, work: Path,
            big: Path, big_digest: str, manifest: Manifest, small_root: Path, small_files: list[Path],
            results: dict[tuple[str, str, str], list[float]], backend: str) -> None:
    big_bytes = big.stat().st_size
    try:
        with Client(plat.gateway, token=plat.token) as client:
            art = client.artifacts
            for r in range(args.rounds):
                project = f"bench-{backend}-{r}"
                client.create_project(project)
                out = work / f"out-{backend}-{r}"
                cases = round_cases(args, art, mlflow, project, out, f"{backend}{r}", big, big_digest,
                                    manifest, small_root, small_files)
                out.mkdir(parents=True)
                for case, cairn_fn, mlflow_fn, nbytes in cases:
                    order = [("cairn", cairn_fn), ("mlflow", mlflow_fn)]
                    for side, fn in order if r % 2 == 0 else order[::-1]:
                        results[(backend, case, side)].append(timed(fn, nbytes))
                if server is not None:  # the store's own ceiling, no server between
                    raw_s3_round(server.client(), f"raw{r}", small_files,
                                 results.setdefault((backend, f"{args.small} x 1 MiB up [boto3 only]", "cairn"), []),
                                 results.setdefault((backend, f"{args.small} x 1 MiB down [boto3 only]", "cairn"), []))
                    raw_s3_big(server.client(), f"raw{r}", big, work / "raw-big.bin",
                               results.setdefault((backend, f"{args.big_mib} MiB up [boto3 only]", "cairn"), []),
                               results.setdefault((backend, f"{args.big_mib} MiB down [boto3 only]", "cairn"), []))
                if args.hop and backend == "fs":
                    via = timed(lambda: _raw_get(f"{plat.gateway}/api/v1/artifacts", plat.headers, big_digest), big_bytes)
                    direct = timed(lambda: _raw_get(plat.service_url("artifacts"), plat.service_headers, big_digest),
                                   big_bytes)
                    results[(backend, "hop: GET via gateway", "cairn")].append(via)
                    results[(backend, "hop: GET direct to service", "cairn")].append(direct)
                shutil.rmtree(out)
                print(f"  {backend} round {r + 1}/{args.rounds} done; load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        plat.stop()


def raw_s3_round(s3: Any, prefix: str, files: list[Path], up: list[float], down: list[float]) -> None:
    """The small files into and out of the bucket with boto3 alone, 8 threads (MB/s each way)."""
    nbytes = sum(p.stat().st_size for p in files)
    up.append(timed(lambda: _pool(lambda p: s3.put_object(Bucket="bench", Key=f"{prefix}/{p.name}",
                                                          Body=p.read_bytes()), files), nbytes))
    down.append(timed(lambda: _pool(lambda p: s3.get_object(Bucket="bench", Key=f"{prefix}/{p.name}")["Body"].read(),
                                    files), nbytes))


def raw_s3_big(s3: Any, prefix: str, big: Path, out: Path, up: list[float], down: list[float]) -> None:
    """The big file into and out of the bucket with boto3's transfer manager alone (its default
    parts and threads): the ceiling for Cairn's presigned multipart transfer."""
    nbytes = big.stat().st_size
    up.append(timed(lambda: s3.upload_file(str(big), "bench", f"{prefix}/big"), nbytes))
    down.append(timed(lambda: s3.download_file("bench", f"{prefix}/big", str(out)), nbytes))
    out.unlink(missing_ok=True)


def _pool(work: Callable[[Path], object], files: list[Path]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, files))


def _raw_get(base: str, headers: dict[str, str], digest: str) -> None:
    with httpx.stream("GET", f"{base}/blobs/{digest}", headers=headers, timeout=120) as resp:
        resp.raise_for_status()
        for _ in resp.iter_raw(MIB):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument("--small", type=int, default=200, help="number of 1 MiB files")
    parser.add_argument("--backends", default="fs,fs-direct,s3")
    parser.add_argument("--hop", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    results: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="cairn-bench-peer-") as tmp:
        work = Path(tmp)
        random_file(work / "big.bin", args.big_mib)
        for i in range(args.small):
            random_file(work / "small" / f"f{i:04d}.bin", 1)
        with mlflow_server(work / "mlflow") as server:
            mlflow = MlflowSide(server.url)
            for backend in args.backends.split(","):
                run_backend(backend, args, work, mlflow, results)
            version = server.version
    print(f"{os.cpu_count()} cores; load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}; "
          f"MLflow {version}; median of {args.rounds} rounds, MB/s")
    print(f"{'backend':<8}{'case':<28}{'Cairn':>8}{'MLflow':>8}{'ratio':>8}   runs (Cairn | MLflow)")
    for backend, case in dict.fromkeys((b, c) for b, c, _ in results):
        cairn = results[(backend, case, "cairn")]
        peer = results.get((backend, case, "mlflow"), [])
        c_med = statistics.median(cairn)
        p_med = statistics.median(peer) if peer else float("nan")
        runs = " ".join(f"{v:.0f}" for v in cairn) + " | " + " ".join(f"{v:.0f}" for v in peer)
        print(f"{backend:<8}{case:<28}{c_med:8.0f}{p_med:8.0f}{c_med / p_med if peer else float('nan'):8.2f}   {runs}")


if __name__ == "__main__":
    main()
