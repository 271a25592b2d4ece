"""The runtime's Prometheus metrics, kept in plain dicts and rendered as the text format.

A serving process has a handful of series; a dependency for them is not worth it. Counters are
only ever incremented from the event loop, so no lock is needed.
"""

from __future__ import annotations

from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    body = ",".join(f'{k}="{v}"' for k, v in pairs)
    return "{" + body + "}"


class Metrics:
    def __init__(self, model: str) -> None:
        self.model = model
        self.requests: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self.latency_counts = [0] * len(LATENCY_BUCKETS)
        self.latency_sum = 0.0
        self.latency_total = 0
        self.batch_sizes: dict[int, int] = defaultdict(int)
        self.versions: dict[str, int] = {}
        self.shadow_dropped = 0

    def observe(self, *, protocol: str, status: int, role: str, version: int, seconds: float) -> None:
        key = (("protocol", protocol), ("status", str(status)), ("role", role), ("version", str(version)))
        self.requests[key] += 1
        self.latency_sum += seconds
        self.latency_total += 1
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.latency_counts[i] += 1

    def batch(self, rows: int, requests: int) -> None:
        """One model call that answered ``requests`` requests."""
        self.batch_sizes[requests] += 1

    def render(self) -> str:
        m = self.model
        lines = ["# HELP cairn_serve_requests_total Requests answered, by protocol, status, role and version.",
                 "# TYPE cairn_serve_requests_total counter"]
        for key, count in sorted(self.requests.items()):
            lines.append(f"cairn_serve_requests_total{_labels((('model', m), *key))} {count}")
        errors = sum(c for k, c in self.requests.items() if int(dict(k)["status"]) >= 400)
        lines += ["# HELP cairn_serve_errors_total Requests answered with a 4xx or 5xx.",
                  "# TYPE cairn_serve_errors_total counter", f'cairn_serve_errors_total{{model="{m}"}} {errors}',
                  "# HELP cairn_serve_latency_seconds Request latency.",
                  "# TYPE cairn_serve_latency_seconds histogram"]
        for bound, count in zip(LATENCY_BUCKETS, self.latency_counts, strict=True):
            lines.append(f'cairn_serve_latency_seconds_bucket{{model="{m}",le="{bound}"}} {count}')
        lines += [f'cairn_serve_latency_seconds_bucket{{model="{m}",le="+Inf"}} {self.latency_total}',
                  f'cairn_serve_latency_seconds_sum{{model="{m}"}} {self.latency_sum}',
                  f'cairn_serve_latency_seconds_count{{model="{m}"}} {self.latency_total}',
                  "# HELP cairn_serve_batch_calls_total Model calls, by how many requests each one answered.",
                  "# TYPE cairn_serve_batch_calls_total counter"]
        for size, count in sorted(self.batch_sizes.items()):
            lines.append(f'cairn_serve_batch_calls_total{{model="{m}",requests="{size}"}} {count}')
        lines += ["# HELP cairn_serve_shadow_dropped_total Shadow copies not made: the shadow was too far behind.",
                  "# TYPE cairn_serve_shadow_dropped_total counter",
                  f'cairn_serve_shadow_dropped_total{{model="{m}"}} {self.shadow_dropped}',
                  "# HELP cairn_serve_loaded_version The model version loaded in each role (1 = loaded).",
                  "# TYPE cairn_serve_loaded_version gauge"]
        for role, version in sorted(self.versions.items()):
            lines.append(f'cairn_serve_loaded_version{{model="{m}",role="{role}",version="{version}"}} 1')
        return "\n".join(lines) + "\n"
