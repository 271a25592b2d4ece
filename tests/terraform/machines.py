"""Network-namespace "machines" for the Terraform tests: each its own network stack and address on
a bridge of its own, running Debian's sshd with a generated key, the file system shared with us.

Names carry our pid and the /24 is a random private one that no route here uses yet, so parallel
sessions never meet; ``close`` (always called) kills whatever still runs in the namespaces and
removes them and the bridge.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def missing_tools() -> str | None:
    """Why these machines cannot be made here, or None."""
    if shutil.which("terraform") is None:
        return "terraform is not on PATH"
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None or shutil.which("scp") is None:
        return "Debian's openssh-server is not installed (apt-get install -y openssh-server; .ci/run does)"
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "network namespaces need root and iproute2"
    probe = f"tfprobe{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return "network namespaces cannot be made here (ip netns add failed)"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def free_subnet() -> str:
    """A random 10.x.y.0/24 that no address or route on this machine is in: '10.x.y'."""
    used = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    used += subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
    while True:
        prefix = f"10.{random.randint(64, 250)}.{random.randint(1, 254)}"
        if f"{prefix}." not in used:
            return prefix


@dataclass
class Machines:
    """``count`` namespaces NAME-1.. with addresses PREFIX.11.., sshd on port 22 of each."""

    workdir: Path
    count: int = 3
    tag: str = field(default_factory=lambda: str(os.getpid()))
    namespaces: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    sshd: list[subprocess.Popen[bytes]] = field(default_factory=list)
    bridge: str = ""
    key_file: Path = Path()

    def open(self) -> "Machines":
        prefix = free_subnet()
        self.bridge = f"tfb{self.tag}"
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{prefix}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        self.key_file = self.workdir / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key_file)], check=True)
        host_key = self.workdir / "host_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
        authorized = self.workdir / "authorized_keys"
        shutil.copy(self.key_file.with_suffix(".pub"), authorized)
        os.chmod(authorized, 0o600)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
        for number in range(1, self.count + 1):
            netns, address = f"tf{self.tag}-{number}", f"{prefix}.{10 + number}"
            subprocess.run(["ip", "netns", "add", netns], check=True)
            self.namespaces.append(netns)
            outside, inside = f"tfv{self.tag}{number}", f"tfp{self.tag}{number}"
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", netns)
            _ip("link", "set", outside, "master", self.bridge, "up")
            _ip("link", "set", "lo", "up", netns=netns)
            _ip("addr", "add", f"{address}/24", "dev", inside, netns=netns)
            _ip("link", "set", inside, "up", netns=netns)
            self.addresses.append(address)
            log = open(self.workdir / f"sshd-{number}.log", "ab")  # noqa: SIM115 - sshd owns it
            self.sshd.append(subprocess.Popen(
                ["ip", "netns", "exec", netns, SSHD, "-D", "-e", "-f", "/dev/null", "-h", str(host_key),
                 "-o", f"ListenAddress={address}", "-o", f"AuthorizedKeysFile={authorized}",
                 "-o", "StrictModes=no", "-o", "PermitRootLogin=prohibit-password", "-o", "UsePAM=no",
                 "-o", "PasswordAuthentication=no", "-o", f"PidFile={self.workdir}/sshd-{number}.pid",
                 "-o", "Subsystem=sftp internal-sftp", "-o", "MaxStartups=50"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL))
            log.close()
        for address in self.addresses:
            wait_for_port(address, 22, 30)
        return self

    def pids(self, number: int) -> set[int]:
        """Every process in machine ``number``'s namespace (1-based), sshd's listener excluded."""
        out = subprocess.run(["ip", "netns", "pids", self.namespaces[number - 1]], capture_output=True,
                             text=True).stdout
        return {int(p) for p in out.split()} - {self.sshd[number - 1].pid}

    def close(self) -> None:
        for proc in self.sshd:
            proc.kill()
            proc.wait()
        for netns in self.namespaces:
            out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout
            for pid in out.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        if self.bridge:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:.0f} s")
