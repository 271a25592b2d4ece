"""Artifact store throughput: upload and download through the gateway to the filesystem backend.

Starts its own nats-server, registry, artifacts and gateway (like the tests) in a temp dir, then
moves ``--files`` blobs of ``--mb`` MiB each (random bytes, page cache warm):

- SDK: ``client.artifacts.upload_blob`` / ``download_blob`` one file after another (httpx; the
  download is written to disk and hashed again on the client before it is renamed into place);
- raw: aiohttp streams, ``--concurrency`` at a time, bytes discarded on download.

Every upload is hashed by the service before it is stored and every download is hashed by the
service before it is served. MB/s = 10^6 bytes/s, best of ``--repeat``.
Usage: python benchmarks/bench_artifacts.py [--files 3] [--mb 128] [--concurrency 2] [--repeat 3]

``--vs-mlflow`` instead runs the side-by-side comparison with MLflow's artifact proxy
(benchmarks/bench_artifacts_peer.py): 256 MiB and 200 x 1 MiB, up and down, on the file system and
on S3 (SeaweedFS, presigned transfers), interleaved rounds, medians and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform as pyplatform
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from cairn.core import fingerprint_file  # noqa: E402
from cairn.sdk import Client  # noqa: E402

from platform_harness import Platform  # noqa: E402

CHUNK = 1 << 20
PROJECT = "bench"  # uploads go into a project (the first one of each blob appends blob.possessed)


def make_files(root: Path, count: int, mib: int) -> list[tuple[Path, str]]:
    out = []
    for i in range(count):
        path = root / f"blob{i}.bin"
        with open(path, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(CHUNK))
        out.append((path, fingerprint_file(path)))
    return out


def sdk_round(client: Client, files: list[tuple[Path, str]], out_dir: Path) -> tuple[float, float]:
    total = sum(p.stat().st_size for p, _ in files)
    # A fresh data dir per round is not needed: delete the blobs so each upload really stores.
    start = time.perf_counter()
    for path, digest in files:
        client.artifacts.upload_blob(PROJECT, path, digest)
    up = total / (time.perf_counter() - start) / 1e6
    start = time.perf_counter()
    for path, digest in files:
        client.artifacts.download_blob(digest, out_dir / path.name)
    down = total / (time.perf_counter() - start) / 1e6
    return up, down


async def raw_round(base: str, headers: dict[str, str], files: list[tuple[Path, str]],
                    concurrency: int) -> tuple[float, float]:
    total = sum(p.stat().st_size for p, _ in files)
    sem = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:

        async def put(path: Path, digest: str) -> None:
            async def body():  # type: ignore[no-untyped-def]
                with open(path, "rb") as f:
                    while chunk := f.read(CHUNK):
                        yield chunk

            async with sem, session.put(f"{base}/projects/{PROJECT}/blobs/{digest}", data=body(),
                                        headers={"Content-Length": str(path.stat().st_size)}) as resp:
                assert resp.status in (200, 201), await resp.text()

        async def get(digest: str) -> None:
            async with sem, session.get(f"{base}/blobs/{digest}") as resp:
                assert resp.status == 200
                async for _ in resp.content.iter_chunked(CHUNK):
                    pass

        start = time.perf_counter()
        await asyncio.gather(*(put(p, d) for p, d in files))
        up = total / (time.perf_counter() - start) / 1e6
        start = time.perf_counter()
        await asyncio.gather(*(get(d) for _, d in files))
        down = total / (time.perf_counter() - start) / 1e6
    return up, down


def main() -> None:
    if "--vs-mlflow" in sys.argv:
        from bench_artifacts_peer import main as peer_main

        sys.argv.remove("--vs-mlflow")
        peer_main()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--mb", type=int, default=128, help="MiB per file")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-art-") as tmp:
        root = Path(tmp)
        files = make_files(root, args.files, args.mb)
        (root / "out").mkdir()
        plat = Platform(root / "platform").start()
        blob_dir = plat.root / "data" / "artifacts" / "blobs"
        try:
            base = f"{plat.gateway}/api/v1/artifacts"
            results: dict[str, list[float]] = {"sdk up": [], "sdk down": [], "raw up": [], "raw down": []}
            with Client(plat.gateway, token=plat.token) as client:
                client.create_project(PROJECT)
                for _ in range(args.repeat):
                    for _, digest in files:
                        (blob_dir / digest[:2] / digest[2:4] / digest).unlink(missing_ok=True)
                    up, down = sdk_round(client, files, root / "out")
                    results["sdk up"].append(up)
                    results["sdk down"].append(down)
                    for _, digest in files:
                        (blob_dir / digest[:2] / digest[2:4] / digest).unlink(missing_ok=True)
                    up, down = asyncio.run(raw_round(base, plat.headers, files, args.concurrency))
                    results["raw up"].append(up)
                    results["raw down"].append(down)
        finally:
            plat.stop()
    total_mb = args.files * args.mb * CHUNK / 1e6
    print(f"machine: {pyplatform.processor() or pyplatform.machine()}, {os.cpu_count()} cores; "
          f"{args.files} x {args.mb} MiB = {total_mb:.0f} MB per direction; best of {args.repeat}")
    for name, values in results.items():
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:>9}: {max(values):7.0f} MB/s   (runs: {runs})")
    print("target >= 300 MB/s; MLflow artifact proxy: 167 MB/s on the same machine (issue 4)")


if __name__ == "__main__":
    main()
