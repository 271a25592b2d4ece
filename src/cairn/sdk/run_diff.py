"""What differs between two runs: pure functions over their records, used by ``runs diff`` (the
registry's ``GET /runs/diff`` and the CLI) and by ``runs reproduce`` (environment and metric deltas).

Every mapping difference has one shape: ``{"added": {k: b}, "removed": {k: a}, "changed": {k: {"a", "b"}}}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

SYSTEM_METRIC_PREFIX = "system/"  # CPU, memory, GPU use sampled by the SDK: not a result of the run
CODE_FIELDS = ("commit", "branch", "remote", "dirty", "archive_digest", "files", "diff_truncated")


def diff_mapping(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keys only in ``b`` (added), only in ``a`` (removed), and in both with different values."""
    a, b = a or {}, b or {}
    return {"added": {k: b[k] for k in sorted(b) if k not in a},
            "removed": {k: a[k] for k in sorted(a) if k not in b},
            "changed": {k: {"a": a[k], "b": b[k]} for k in sorted(a) if k in b and a[k] != b[k]}}


def is_empty(diff: Mapping[str, Any]) -> bool:
    """True when a :func:`diff_mapping` result found no difference."""
    return not (diff["added"] or diff["removed"] or diff["changed"])


def packages_by_name(packages: list[str] | None) -> dict[str, str]:
    """``["numpy==2.1.0", ...]`` -> ``{"numpy": "2.1.0"}`` (a line without ``==`` keeps its text)."""
    out = {}
    for line in packages or []:
        name, sep, version = line.partition("==")
        out[name.strip().lower()] = version.strip() if sep else line
    return out


def _hardware(env: Mapping[str, Any]) -> dict[str, Any]:
    cpu, gpu = env.get("cpu") or {}, env.get("gpu") or {}
    names = [d.get("name") for d in gpu.get("devices") or []]
    return {"cpu.model": cpu.get("model"), "cpu.count": cpu.get("count"),
            "memory_bytes": env.get("memory_bytes"),
            "gpu.count": len(names), "gpu.models": ", ".join(sorted({str(n) for n in names})) or None}


def _drivers(env: Mapping[str, Any]) -> dict[str, Any]:
    gpu = env.get("gpu") or {}
    return {k: gpu.get(k) for k in ("driver", "cuda_driver", "cuda", "cudnn")}


def compare_environments(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> dict[str, Any]:
    """Section by section (python, os, host, hardware, drivers, packages, frameworks, env vars)
    what differs between two ``capture_environment()`` records; ``identical`` when nothing does."""
    a, b = a or {}, b or {}
    sections = {
        "python": diff_mapping(a.get("python"), b.get("python")),
        "os": diff_mapping(a.get("os"), b.get("os")),
        "host": diff_mapping({"hostname": a.get("hostname")}, {"hostname": b.get("hostname")}),
        "hardware": diff_mapping(_hardware(a), _hardware(b)),
        "drivers": diff_mapping(_drivers(a), _drivers(b)),
        "packages": diff_mapping(packages_by_name(a.get("packages")), packages_by_name(b.get("packages"))),
        "frameworks": diff_mapping(a.get("frameworks"), b.get("frameworks")),
        "env": diff_mapping(a.get("env"), b.get("env")),
    }
    return {"recorded": {"a": bool(a), "b": bool(b)},
            "identical": all(is_empty(d) for d in sections.values()), **sections}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    return None


def _within(a: float, b: float, tolerance: float, relative: bool) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    allowed = tolerance * max(abs(a), 1e-12) if relative else tolerance
    return abs(b - a) <= allowed


def metric_deltas(a_metrics: Mapping[str, Any], b_metrics: Mapping[str, Any],
                  tolerance: float | Mapping[str, float] = 0.0, *, relative: bool = False) -> dict[str, Any]:
    """Final value per key of two runs, ``b - a`` and whether it is within ``tolerance`` (absolute,
    or a fraction of ``|a|`` when ``relative``; one number, or per key with ``"*"`` as the default)."""

    def tol(key: str) -> float:
        if isinstance(tolerance, Mapping):
            return float(tolerance.get(key, tolerance.get("*", 0.0)))
        return float(tolerance)

    metrics = {}
    for key in sorted(set(a_metrics) & set(b_metrics)):
        va, vb = _number(a_metrics[key]), _number(b_metrics[key])
        if va is None or vb is None:
            metrics[key] = {"a": a_metrics[key], "b": b_metrics[key], "delta": None, "relative": None,
                            "within_tolerance": a_metrics[key] == b_metrics[key]}
            continue
        finite = math.isfinite(va) and math.isfinite(vb)
        delta = vb - va if finite else None
        delta = delta if delta is not None and math.isfinite(delta) else None  # 1e308 - -1e308
        metrics[key] = {"a": a_metrics[key], "b": b_metrics[key], "delta": delta,
                        "relative": delta / abs(va) if delta is not None and va != 0 else None,
                        "within_tolerance": _within(va, vb, tol(key), relative)}
    only_a = sorted(set(a_metrics) - set(b_metrics))
    only_b = sorted(set(b_metrics) - set(a_metrics))
    return {"metrics": metrics, "only_in_a": only_a, "only_in_b": only_b,
            "all_within_tolerance": all(m["within_tolerance"] for m in metrics.values()) and not only_a and not only_b}


def code_summary(code: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The fields of a code record that a diff compares (the inline git diff is left out)."""
    if not code:
        return None
    return {k: code.get(k) for k in CODE_FIELDS}


def compare_code(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> dict[str, Any]:
    """Commit, branch, remote, dirty flag and archive digest of two code records."""
    sa, sb = code_summary(a), code_summary(b)
    return {"a": sa, "b": sb, "changed": diff_mapping(sa, sb)["changed"] if sa and sb else {},
            "same_archive": bool(sa and sb and sa["archive_digest"] and sa["archive_digest"] == sb["archive_digest"]),
            "git_diff_changed": (a or {}).get("diff", "") != (b or {}).get("diff", "")}


def _run_head(run: Mapping[str, Any]) -> dict[str, Any]:
    return {k: run.get(k) for k in ("id", "project", "experiment_id", "name", "status", "created_at")}


def _datasets(uses: list[Mapping[str, Any]] | None) -> dict[str, Any]:
    """Dataset name -> the version used (a list when a run used several versions of one dataset)."""
    out: dict[str, Any] = {}
    for use in sorted(uses or [], key=lambda u: (u["dataset"], u["version"])):
        entry = {"version": use["version"], "manifest_digest": use["manifest_digest"]}
        seen = out.get(use["dataset"])
        out[use["dataset"]] = entry if seen is None else [*(seen if isinstance(seen, list) else [seen]), entry]
    return out


def result_metrics(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """The metrics that are results of a run: ``system/*`` samples (CPU, memory, GPU use) left out."""
    return {k: v for k, v in (metrics or {}).items() if not k.startswith(SYSTEM_METRIC_PREFIX)}


def diff_runs(a: Mapping[str, Any], b: Mapping[str, Any], *, tolerance: float | Mapping[str, float] = 0.0,
              relative: bool = False, system_metrics: bool = False) -> dict[str, Any]:
    """The whole diff of two run bundles ``{"run", "record", "datasets", "metrics"}``: ``record`` is
    the run's reproducibility record (environment, code, seeds, command) or None, ``metrics`` the
    final value per key (``system/*`` keys only with ``system_metrics``)."""
    ra, rb = a.get("record") or {}, b.get("record") or {}
    pick = (lambda m: dict(m or {})) if system_metrics else result_metrics
    return {
        "a": _run_head(a["run"]), "b": _run_head(b["run"]),
        "params": diff_mapping(a["run"].get("params"), b["run"].get("params")),
        "code": compare_code(ra.get("code"), rb.get("code")),
        "environment": compare_environments(ra.get("environment"), rb.get("environment")),
        "datasets": diff_mapping(_datasets(a.get("datasets")), _datasets(b.get("datasets"))),
        "metrics": metric_deltas(pick(a.get("metrics")), pick(b.get("metrics")), tolerance, relative=relative),
        "seeds": diff_mapping(ra.get("seeds"), rb.get("seeds")),
        "command": {"a": ra.get("command"), "b": rb.get("command"), "same": ra.get("command") == rb.get("command")},
    }
