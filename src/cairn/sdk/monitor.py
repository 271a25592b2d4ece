"""The monitor from Python: profile a dataset version, register profiles, set a deployment's
reference, read its windows, drift and status, and manage alert rules (docs/monitor.md).

``cairn.monitor`` (pandas, pyarrow, scipy) is imported inside the methods that profile, so that
importing the SDK (and every CLI command) stays cheap.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from cairn.monitor import Profile

BASE = "/api/v1/monitor"
DATA_SUFFIXES = (".parquet", ".pq", ".csv")


def _q(part: str) -> str:
    return quote(part, safe="")


def _csv_as_parquet(source: Path, dest: Path) -> Path:
    """Rewrite a CSV as Parquet batch by batch, so profiling it reads one row group at a time
    instead of holding the whole table (types are inferred from the first block, as pyarrow does)."""
    import pyarrow.csv as pv
    import pyarrow.parquet as pq

    reader = pv.open_csv(source)
    with pq.ParquetWriter(dest, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
    return dest


def profile_files(paths: Sequence[str | os.PathLike[str]], *, bins: int = 10,
                  reference: Profile | None = None) -> Profile:
    """One profile of several Parquet/CSV files, equal to profiling their concatenation: a first
    pass merges each file's sketch (no histogram), the equal-mass edges come from the merged
    sketch, and a second pass bins every file on those edges and merges (counts, sketches and
    histograms add exactly; mean and m2 combine by Chan's formula). With ``reference``, numeric
    columns are binned on the reference's edges instead (one pass)."""
    import numpy as np

    from cairn.monitor import NumericProfile, Profile, profile_table
    from cairn.monitor.profile import _equal_mass_edges

    if not paths:
        raise ValueError("no files to profile")
    with tempfile.TemporaryDirectory(prefix="cairn-profile-") as tmp:
        sources: list[Path] = []
        for index, path in enumerate(Path(p) for p in paths):
            if not path.is_file():
                raise ValueError(f"{path}: no such file")
            suffix = path.suffix.lower()
            if suffix == ".csv":
                sources.append(_csv_as_parquet(path, Path(tmp) / f"{index}.parquet"))
            elif suffix in (".parquet", ".pq"):
                sources.append(path)
            else:
                raise ValueError(f"{path}: profile Parquet (.parquet) or CSV (.csv) files")
        if reference is not None:
            return _merge_files([profile_table(s, reference=reference) for s in sources], paths)
        if len(sources) == 1:
            return profile_table(sources[0], bins=bins)
        sketches = _merge_files([profile_table(s, bins=1) for s in sources], paths)
        edged: dict[str, Any] = {}
        for name, column in sketches.columns.items():
            if isinstance(column, NumericProfile):
                edges = _equal_mass_edges(column, bins)
                edged[name] = replace(column, edges=edges, hist=np.zeros(len(edges) + 1, dtype=np.int64))
        # only the edges of this stand-in reference are read: profile_table bins on them
        reference = Profile(rows=sketches.rows, columns=edged, roles={n: sketches.roles[n] for n in edged})
        return _merge_files([profile_table(s, reference=reference) for s in sources], paths)


def _merge_files(profiles: Sequence[Profile], names: Sequence[str | os.PathLike[str]]) -> Profile:
    total = profiles[0]
    for name, profile in zip(names[1:], profiles[1:]):
        try:
            total = total.merge(profile)
        except ValueError as err:
            raise ValueError(f"{name} does not match {names[0]}: {err}") from None
    return total


class MonitorMixin:
    """The monitor service's routes (``/api/v1/monitor``) and profiling of dataset versions."""

    request: Any

    artifacts: Any  # Client.artifacts

    def _mon(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, f"{BASE}{path}", **kwargs)

    def _deployment(self, project: str, deployment: str) -> str:
        return f"/projects/{_q(project)}/deployments/{_q(deployment)}"

    # --- profiles ------------------------------------------------------------------------------

    def profile_dataset(self, project: str, dataset: str, version: int | str | None = None, *,
                        bins: int = 10) -> Profile:
        """Profile the Parquet and CSV files of a dataset version (``None``: the latest),
        downloaded (verified) into a temp directory that is removed afterwards. Several files are
        profiled as one table (see :func:`profile_files`); other files are ignored."""
        profile, _ = self.profile_dataset_version(project, dataset, version, bins=bins)
        return profile

    def profile_dataset_version(self, project: str, dataset: str, version: int | str | None = None, *,
                                bins: int = 10) -> tuple[Profile, dict[str, Any]]:
        """:meth:`profile_dataset` and the version record (its number when ``version`` was latest)."""
        ref = dataset if version is None else f"{dataset}@v{str(version).lstrip('v')}"
        record = self.artifacts.dataset_version(project, ref)
        entries = sorted((e for e in record["manifest"]["entries"]
                          if e["kind"] == "file" and e["path"].lower().endswith(DATA_SUFFIXES)),
                         key=lambda e: e["path"])
        if not entries:
            listed = [e["path"] for e in record["manifest"]["entries"]][:20]
            raise ValueError(f"dataset {dataset}@v{record['version']} has no .parquet or .csv files "
                             f"(it has: {listed})")
        with tempfile.TemporaryDirectory(prefix="cairn-dataset-") as tmp:
            paths = []
            for index, entry in enumerate(entries):
                # flat numbered names: no manifest path decides where a file lands
                local = Path(tmp) / f"{index}{Path(entry['path']).suffix.lower()}"
                self.artifacts.download_blob(entry["digest"], local)
                paths.append(local)
            try:
                return profile_files(paths, bins=bins), record
            except ValueError as err:  # name the dataset's paths, not the temp copies
                message = str(err)
                for local, entry in zip(paths, entries):
                    message = message.replace(str(local), entry["path"])
                raise ValueError(f"dataset {dataset}@v{record['version']}: {message}") from None

    def register_profile(self, project: str, profile: Profile, source: dict[str, Any] | None = None) -> str:
        """Store a profile (content-addressed) and return its digest. ``source`` says where it came
        from: ``{"dataset": "fraud", "version": 3}``, ``{"run": "<id>"}`` or ``{}``."""
        import orjson

        body = {"profile": orjson.loads(profile.to_json()), "source": source or {}}
        return self._mon("POST", f"/projects/{_q(project)}/profiles", json=body)["digest"]

    def list_profiles(self, project: str) -> list[dict[str, Any]]:
        return self._mon("GET", f"/projects/{_q(project)}/profiles")["profiles"]

    def get_profile(self, project: str, digest: str) -> Profile:
        """A registered profile, checked against its digest (ValueError if the bytes differ)."""
        from cairn.monitor import Profile

        answer = self._mon("GET", f"/projects/{_q(project)}/profiles/{_q(digest)}")
        if isinstance(answer, dict) and "columns" not in answer and isinstance(answer.get("profile"), dict):
            answer = answer["profile"]
        profile = Profile.from_dict(answer)
        if profile.digest() != digest:
            raise ValueError(f"profile {digest} came back with digest {profile.digest()}: not the profile asked for")
        return profile

    # --- deployments ---------------------------------------------------------------------------

    def set_reference(self, project: str, deployment: str, digest: str) -> dict[str, Any]:
        """Compare the deployment's windows with this registered profile from now on."""
        return self._mon("PUT", self._deployment(project, deployment) + "/reference", json={"profile": digest})

    def get_reference(self, project: str, deployment: str) -> dict[str, Any]:
        return self._mon("GET", self._deployment(project, deployment) + "/reference")

    def monitor_status(self, project: str, deployment: str) -> dict[str, Any]:
        """The latest window per size, drift per column and open alerts."""
        return self._mon("GET", self._deployment(project, deployment) + "/status")

    def monitor_windows(self, project: str, deployment: str, *, size: str | None = None, since: str = "1h",
                        until: str | None = None, max_points: int = 200) -> dict[str, Any]:
        params = {"size": size, "since": since, "until": until, "max_points": max_points}
        return self._mon("GET", self._deployment(project, deployment) + "/windows",
                         params={k: v for k, v in params.items() if v is not None})

    def monitor_drift(self, project: str, deployment: str, *, size: str | None = None, since: str = "1h",
                      column: str | None = None) -> dict[str, Any]:
        params = {"size": size, "since": since, "column": column}
        return self._mon("GET", self._deployment(project, deployment) + "/drift",
                         params={k: v for k, v in params.items() if v is not None})

    # --- alert rules and alerts ----------------------------------------------------------------

    def add_alert_rule(self, project: str, deployment: str, *, name: str, metric: str, comparison: str,
                       threshold: float, column: str | None = None, window: str | None = None,
                       persistence: tuple[int, int] = (1, 1), cooldown_s: float = 300,
                       action: dict[str, Any] | None = None) -> dict[str, Any]:
        """An alert rule: fires when ``metric comparison threshold`` holds in ``k`` of the last
        ``n`` windows (``persistence=(k, n)``); ``action`` is None, ``{"rollback": True}`` or
        ``{"pipeline": "<name>"}``."""
        k, n = persistence
        body = {"name": name, "metric": metric, "column": column, "comparison": comparison,
                "threshold": threshold, "window": window, "persistence": {"k": k, "n": n},
                "cooldown_s": cooldown_s, "action": action}
        return self._mon("POST", self._deployment(project, deployment) + "/rules", json=body)

    def alert_rules(self, project: str, deployment: str) -> list[dict[str, Any]]:
        return self._mon("GET", self._deployment(project, deployment) + "/rules")["rules"]

    def update_alert_rule(self, project: str, deployment: str, rule_id: str, **changes: Any) -> dict[str, Any]:
        return self._mon("PATCH", self._deployment(project, deployment) + f"/rules/{_q(rule_id)}", json=changes)

    def delete_alert_rule(self, project: str, deployment: str, rule_id: str) -> None:
        self._mon("DELETE", self._deployment(project, deployment) + f"/rules/{_q(rule_id)}")

    def alerts(self, project: str, *, state: str = "open", deployment: str | None = None) -> list[dict[str, Any]]:
        """Alerts, newest first: ``state="open"`` or ``"all"``, optionally of one deployment."""
        params = {"state": state, "deployment": deployment}
        return self._mon("GET", f"/projects/{_q(project)}/alerts",
                         params={k: v for k, v in params.items() if v is not None})["alerts"]
