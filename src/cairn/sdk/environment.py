"""What a run ran on: Python, OS, CPU, memory, GPUs, drivers, CUDA/cuDNN, packages, framework
versions, an allowlist of environment variables, the command, seeds and the host.

``capture_environment()`` is cheap (tens of milliseconds, plus one ``nvidia-smi`` call where one is
installed) and never imports a heavy framework: torch, tensorflow, jax, sklearn and xgboost are only
looked at when the program has imported them already. Environment variables are recorded only when
allowlisted, and never when their name looks like a secret (``*TOKEN*``, ``*SECRET*``, ``*KEY*``,
``*PASSWORD*``, ...), whatever the allowlist says.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cairn import nvml

FRAMEWORKS = ("torch", "tensorflow", "jax", "sklearn", "xgboost", "lightgbm", "numpy", "pandas")
DEFAULT_ENV_ALLOWLIST = (
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "CUBLAS_WORKSPACE_CONFIG",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "PYTHONHASHSEED", "TF_DETERMINISTIC_OPS", "TF_CUDNN_DETERMINISTIC", "NCCL_*", "TORCH_*",
    "XLA_FLAGS", "JAX_*", "CAIRN_JOB_ID", "CAIRN_RUN_ID", "CAIRN_PROJECT", "CAIRN_ATTEMPT",
    "LANG", "LC_ALL", "TZ",
)
SECRET_MARKERS = ("TOKEN", "SECRET", "KEY", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE")
NVIDIA_SMI_FIELDS = ("name", "driver_version", "memory.total")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def looks_secret(name: str) -> bool:
    """True for variable names that may hold a secret (these are never recorded)."""
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def env_allowlist(environ: Mapping[str, str] | None = None) -> list[str]:
    """The default allowlist plus the names or globs in ``CAIRN_ENV_ALLOWLIST`` (comma-separated)."""
    environ = os.environ if environ is None else environ
    extra = [p.strip() for p in environ.get("CAIRN_ENV_ALLOWLIST", "").split(",") if p.strip()]
    return [*DEFAULT_ENV_ALLOWLIST, *extra]


def select_env_vars(environ: Mapping[str, str], allowlist: list[str]) -> dict[str, str]:
    """Allowlisted variables (exact names or globs), secrets left out, credentials cut from URLs."""
    out = {}
    for name in sorted(environ):
        if looks_secret(name) or not any(fnmatch.fnmatchcase(name, pattern) for pattern in allowlist):
            continue
        out[name] = _URL_CREDENTIALS.sub(r"\g<scheme>", environ[name])[:1000]
    return out


# --- GPUs --------------------------------------------------------------------------------------

def parse_nvidia_smi_csv(text: str) -> list[dict[str, Any]]:
    """Parse ``nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < len(NVIDIA_SMI_FIELDS) or not cells[0]:
            continue
        name, driver, memory = cells[:3]
        gpu: dict[str, Any] = {"name": name, "driver": driver or None}
        gpu["memory_mib"] = int(float(memory)) if re.fullmatch(r"\d+(\.\d+)?", memory) else None
        gpus.append(gpu)
    return gpus


def parse_cuda_driver_version(text: str) -> str | None:
    """The ``CUDA Version: 12.4`` of plain ``nvidia-smi`` output (the newest CUDA the driver runs)."""
    found = re.search(r"CUDA Version\s*:\s*([0-9][0-9.]*)", text)
    return found.group(1) if found else None


def _run(args: list[str], timeout: float = 10.0) -> str | None:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def capture_gpus() -> dict[str, Any]:
    """GPU models, driver and the driver's CUDA version (nvidia-smi, else NVML via pynvml)."""
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        listing = _run([smi, f"--query-gpu={','.join(NVIDIA_SMI_FIELDS)}", "--format=csv,noheader,nounits"])
        if listing is not None:
            gpus = parse_nvidia_smi_csv(listing)
            cuda = parse_cuda_driver_version(_run([smi]) or "")
            return {"gpus": gpus, "driver": gpus[0]["driver"] if gpus else None, "cuda_driver": cuda,
                    "source": "nvidia-smi"}
    gpus, cuda = nvml.inventory()
    if gpus:
        return {"gpus": gpus, "driver": gpus[0]["driver"], "cuda_driver": cuda, "source": "nvml"}
    return {"gpus": [], "driver": None, "cuda_driver": None, "source": None}


# --- CPU, memory, OS ---------------------------------------------------------------------------

def parse_cpuinfo_model(text: str) -> str | None:
    """The ``model name`` of ``/proc/cpuinfo`` (x86), else its ``Model``/``Hardware`` line (ARM)."""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        found = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if found:
            return found.group(1).strip()
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def cpu_model() -> str | None:
    model = parse_cpuinfo_model(_read("/proc/cpuinfo"))
    if model is None and sys.platform == "darwin":
        model = (_run(["sysctl", "-n", "machdep.cpu.brand_string"]) or "").strip() or None
    return model or platform.processor() or None


def memory_total_bytes() -> int | None:
    found = re.search(r"^MemTotal:\s*(\d+)\s*kB", _read("/proc/meminfo"), re.MULTILINE)
    if found:
        return int(found.group(1)) * 1024
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def parse_os_release(text: str) -> dict[str, str]:
    """``/etc/os-release`` as a dict (quotes removed)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def os_info() -> dict[str, Any]:
    release = parse_os_release(_read("/etc/os-release"))
    distro = release.get("PRETTY_NAME") or " ".join(filter(None, (release.get("NAME"), release.get("VERSION_ID"))))
    if not distro and sys.platform == "darwin":
        distro = f"macOS {platform.mac_ver()[0]}"
    return {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
            "platform": platform.platform(terse=True), "distro": distro or None}


# --- Python, packages, frameworks --------------------------------------------------------------

_HEADER = re.compile(r"^(Name|Version):[ \t]*(.*)$", re.MULTILINE)


def _name_and_version(dist: importlib.metadata.Distribution) -> tuple[str | None, str | None]:
    """Name and Version from the distribution's metadata headers. ``dist.metadata`` parses the
    whole file as an e-mail message, long description included, and ``dist.version`` parses it
    again: for 250 packages that was 0.2 s of CPU at every run start; the headers end at the
    first empty line."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    headers = dict(_HEADER.findall(text.split("\n\n", 1)[0]))  # read_text gives universal newlines
    return headers.get("Name") or None, headers.get("Version") or None


def installed_packages() -> list[str]:
    """``name==version`` of every installed distribution, sorted by name (a ``pip freeze``)."""
    seen: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name, version = _name_and_version(dist)
        if not name:
            continue
        key = re.sub(r"[-_.]+", "-", name).lower()
        seen.setdefault(key, f"{key}=={version}")
    return [seen[k] for k in sorted(seen)]


def framework_versions(modules: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Versions of the frameworks the program has already imported (never imports one)."""
    modules = sys.modules if modules is None else modules
    out = {}
    for name in FRAMEWORKS:
        module = modules.get(name)
        version = getattr(module, "__version__", None) if module is not None else None
        if version is not None:
            out[name] = str(version)
    return out


def torch_cuda(modules: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """CUDA and cuDNN versions torch was built with, only when torch is already imported."""
    torch = (sys.modules if modules is None else modules).get("torch")
    if torch is None:
        return {}
    out: dict[str, Any] = {"cuda": getattr(getattr(torch, "version", None), "cuda", None)}
    try:
        cudnn = torch.backends.cudnn.version()
    except Exception:  # no cuDNN in a CPU build
        cudnn = None
    out["cudnn"] = str(cudnn) if cudnn is not None else None
    return out


def python_info() -> dict[str, Any]:
    return {"version": platform.python_version(), "implementation": platform.python_implementation(),
            "executable": Path(sys.executable).name if sys.executable else None}


# --- the record --------------------------------------------------------------------------------

def capture_environment(command: list[str] | None = None, seeds: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything about where and how this process runs, as a JSON-ready dict."""
    gpu = capture_gpus()
    torch_build = torch_cuda()
    return {
        "python": python_info(),
        "os": os_info(),
        "hostname": socket.gethostname(),
        "cpu": {"model": cpu_model(), "count": os.cpu_count()},
        "memory_bytes": memory_total_bytes(),
        "gpu": {"devices": gpu["gpus"], "driver": gpu["driver"], "cuda_driver": gpu["cuda_driver"],
                "cuda": torch_build.get("cuda"), "cudnn": torch_build.get("cudnn"), "source": gpu["source"]},
        "packages": installed_packages(),
        "frameworks": framework_versions(),
        "env": select_env_vars(os.environ, env_allowlist()),
        "command": list(sys.argv if command is None else command),
        "seeds": dict(seeds or {}),
    }
