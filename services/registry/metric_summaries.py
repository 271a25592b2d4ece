"""Metric summaries for run search, read from the metrics service's HTTP API: one key's last value
per run, so ``metrics.val_loss < 0.3`` and ``order_by metrics.val_loss`` work in the registry."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson

from cairn.kernel.errors import InvalidInput, Unavailable
from cairn.kernel.identity import Signer

PAGE = 10_000


class MetricSummaries:
    """Fetches ``{run_id: last value}`` for one key of a project (NaN and infinities left out)."""

    def __init__(self, metrics_url: str, signer: Signer, timeout: float = 10.0) -> None:
        self.metrics_url = metrics_url.rstrip("/")
        self.signer = signer
        self.timeout = timeout
        self._http = httpx.Client(timeout=timeout)  # kept: a new client per search cost ~10 ms

    def last_values(self, project: str, key: str) -> dict[str, float]:
        if not self.metrics_url:
            raise InvalidInput("filtering runs by metrics needs the metrics service (CAIRN_METRICS_URL); "
                               "use params, tags or attributes", details={"field": "filter"})
        out: dict[str, float] = {}
        after = ""
        http = self._http
        while True:
            try:
                resp = http.get(f"{self.metrics_url}/projects/{project}/metrics/summaries",
                                params={"key": key, "limit": PAGE, "after": after},
                                headers=self.signer.internal())
                resp.raise_for_status()
            except httpx.HTTPError as err:
                raise Unavailable(f"the metrics service did not answer for metric {key!r} "
                                  f"({type(err).__name__}); retry shortly", details={"retry_after": 1}) from None
            body = orjson.loads(resp.content)
            for row in body["summaries"]:
                last = row["last"]
                if isinstance(last, (int, float)) and math.isfinite(last):
                    out[row["run_id"]] = float(last)
            if not body.get("next_after"):
                return out
            after = body["next_after"]

    def many_last_values(self, project: str, keys: list[str]) -> dict[str, dict[str, float]]:
        """:meth:`last_values` of several keys, fetched at the same time: ``{key: {run_id: value}}``."""
        keys = list(dict.fromkeys(keys))
        if len(keys) <= 1:
            return {key: self.last_values(project, key) for key in keys}
        with ThreadPoolExecutor(max_workers=min(len(keys), 8)) as pool:
            return dict(zip(keys, pool.map(lambda key: self.last_values(project, key), keys)))

    def run_last_values(self, project: str, run_id: str) -> dict[str, float | str | None]:
        """Every key's last value for one run (``{}`` without a metrics service); NaN and infinities
        come as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``."""
        if not self.metrics_url:
            return {}
        try:
            resp = self._http.get(f"{self.metrics_url}/projects/{project}/runs/{run_id}/metrics/summary",
                                  headers=self.signer.internal())
            resp.raise_for_status()
        except httpx.HTTPError as err:
            raise Unavailable(f"the metrics service did not answer for run {run_id!r} ({type(err).__name__}); "
                              "retry shortly", details={"retry_after": 1}) from None
        return {row["key"]: row["last"] for row in resp.json()["summaries"]}
