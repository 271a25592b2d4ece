"""Hosts for failure tests: Linux network namespaces on a bridge of their own.

Each "host" is a network namespace with one veth into a bridge in the root namespace, on a private
/24 that no interface here uses. The root namespace holds the bridge's address (``.1``), so the
test process reaches every host directly, as a client on the network would. Cutting a host off is
``ip link set <its bridge-side veth> down``: its processes keep running and see every peer
vanish, the others see it vanish, with no process told anything.

Names carry this process's pid (pytest-xdist workers and other stacks run side by side on the
machine). Everything made here is removed by :meth:`Network.close`, which the fixture calls
however the test ends; :func:`sweep_stale` removes what a killed test run left: namespaces of our
prefix older than an hour, and bridges whose pid is not running any more.

Processes enter a namespace by ``setns(2)`` in the child before it runs anything (a fork of a
process that imported the services, or ``preexec_fn`` before an exec), each in a session and
process group of its own, so that a host's processes are killed by process group."""

from __future__ import annotations

import ctypes
import ipaddress
import os
import random
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "cairnft"  # namespaces: cairnft-<pid>-<host>; bridges: cft<pid>; veths: cf<pid>x<n>
NETNS_DIR = Path("/var/run/netns")
STALE_AFTER_S = 3600.0
CLONE_NEWNET = 0x40000000


def netns_possible() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); run the failure tests as root"
    probe = f"{PREFIX}-probe-{os.getpid()}"
    try:
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return "the ip command (iproute2) is not installed"
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip() or made.returncode}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def _ip(*args: str, netns: str | None = None) -> None:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Remove what earlier runs left behind: our namespaces older than an hour, our bridges whose
    owner process is gone. Returns what was removed."""
    removed: list[str] = []
    if NETNS_DIR.exists():
        for path in NETNS_DIR.glob(f"{PREFIX}-*"):
            try:
                old = time.time() - path.stat().st_mtime > STALE_AFTER_S
            except FileNotFoundError:
                continue
            if old:
                subprocess.run(["ip", "netns", "del", path.name], capture_output=True, check=False)
                removed.append(path.name)
    links = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True,
                           check=False).stdout
    for match in re.finditer(r"^\d+: (cft(\d+)):", links, re.MULTILINE):
        if not _pid_alive(int(match.group(2))):
            subprocess.run(["ip", "link", "del", match.group(1)], capture_output=True, check=False)
            removed.append(match.group(1))
    return removed


def free_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that overlaps no address or route of the root namespace."""
    text = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    text += subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    used = [ipaddress.ip_network(m, strict=False) for m in re.findall(r"(\d+\.\d+\.\d+\.\d+/\d+)", text)]
    rng = random.Random()
    for _ in range(200):
        candidate = ipaddress.IPv4Network(f"10.{rng.randrange(64, 250)}.{rng.randrange(1, 255)}.0/24")
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise RuntimeError("no free private /24 found for the test network")


def enter(netns: str) -> None:
    """Move the calling process (single-threaded: a fresh fork) into ``netns``, in a session of
    its own (its pid is its process group: killed by group)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {netns}: {os.strerror(err)}")
    finally:
        os.close(fd)
    try:
        os.setsid()
    except PermissionError:  # already a session leader
        pass


@dataclass
class Host:
    name: str
    netns: str
    ip: str
    veth: str  # the bridge-side end: down = cut off


@dataclass
class Network:
    """The bridge and its hosts; :meth:`close` removes all of it (safe to call twice)."""

    subnet: ipaddress.IPv4Network
    bridge: str
    hosts: dict[str, Host] = field(default_factory=dict)

    @classmethod
    def make(cls, names: list[str]) -> "Network":
        sweep_stale()
        pid = os.getpid()
        net = cls(free_subnet(), f"cft{pid}")
        try:
            _ip("link", "add", net.bridge, "type", "bridge")
            addresses = list(net.subnet.hosts())
            _ip("addr", "add", f"{addresses[0]}/{net.subnet.prefixlen}", "dev", net.bridge)
            _ip("link", "set", net.bridge, "up")
            for number, name in enumerate(names, start=1):
                net.add(name, str(addresses[10 + number]), number)
        except BaseException:
            net.close()
            raise
        return net

    def add(self, name: str, ip: str, number: int) -> Host:
        pid = os.getpid()
        netns, outer, inner = f"{PREFIX}-{pid}-{name}", f"cf{pid}x{number}", f"cf{pid}y{number}"
        _ip("netns", "add", netns)
        host = Host(name, netns, ip, outer)
        self.hosts[name] = host
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", netns)
        _ip("link", "set", outer, "master", self.bridge)
        _ip("link", "set", outer, "up")
        _ip("link", "set", "lo", "up", netns=netns)
        _ip("addr", "add", f"{ip}/{self.subnet.prefixlen}", "dev", inner, netns=netns)
        _ip("link", "set", inner, "up", netns=netns)
        return host

    def cut(self, name: str) -> None:
        """Take the host off the network (its processes keep running)."""
        _ip("link", "set", self.hosts[name].veth, "down")

    def heal(self, name: str) -> None:
        _ip("link", "set", self.hosts[name].veth, "up")

    def close(self) -> None:
        for host in self.hosts.values():  # deleting a namespace deletes its veth and the peer
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        self.hosts.clear()
