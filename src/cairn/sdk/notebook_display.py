"""``run.display()``: a live view of a run where it runs, with no JupyterLab extension.

In a notebook the view is one output (``IPython.display.display(..., display_id=True)``) that is
updated in place (``update_display_data``) as metrics are logged: a progress bar when a total
number of steps is given, and the latest value and step of each metric. Updates happen on the
thread that logs (the cell's), at most every ``every_s`` seconds, so a tight training loop pays a
clock read per point; the last update comes when the run ends. Outside a notebook the same view is
one plain text line printed per refresh.
"""

from __future__ import annotations

import html
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO

from cairn.sdk.notebook import ipython_shell

MAX_KEYS = 20  # the view shows the most recently logged keys first, up to this many


def _in_kernel() -> bool:
    """True in a Jupyter kernel (which has rich outputs); a terminal IPython prints text."""
    shell = ipython_shell()
    return shell is not None and any(c.__module__.startswith("ipykernel") for c in type(shell).__mro__)


class RunDisplay:
    """The live view of one run; :meth:`observe` is fed by the run's ``log_metric(s)``."""

    def __init__(self, run_id: str, name: str | None, *, total: int | None = None, every_s: float = 0.5,
                 stream: TextIO | None = None) -> None:
        self.run_id, self.name, self.total, self.every_s = run_id, name, total, every_s
        self.latest: dict[str, tuple[int | None, float]] = {}
        self.step: int | None = None
        self.status = "running"
        self.updates = 0
        self._stream = stream
        self._last = 0.0
        self._lock = threading.Lock()
        self._handle: Any = None
        if stream is None and _in_kernel():
            from IPython.display import display

            self._handle = display(self, display_id=True)
        else:
            self._write_text()

    # --- what the view shows ---------------------------------------------------------------------
    def _progress(self) -> float | None:
        if not self.total or self.step is None:
            return None
        return min(1.0, (self.step + 1) / self.total)

    def _title(self) -> str:
        return f"run {self.name or self.run_id} ({self.status})"

    def text(self) -> str:
        """One line: title, progress and the latest metrics (what a terminal shows)."""
        parts = [self._title()]
        progress = self._progress()
        if progress is not None:
            parts.append(f"step {self.step + 1 if self.step is not None else 0}/{self.total} ({progress:.0%})")
        parts += [f"{k}={v:.6g}" for k, (_, v) in list(self.latest.items())[-MAX_KEYS:]]
        return " | ".join(parts)

    def _repr_html_(self) -> str:
        progress = self._progress()
        bar = (f'<progress value="{progress:.4f}" max="1" style="width:20em"></progress> '
               f"{self.step + 1 if self.step is not None else 0}/{self.total}" if progress is not None else "")
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td><td>{'' if s is None else s}</td></tr>"
                       for k, (s, v) in list(self.latest.items())[-MAX_KEYS:])
        table = (f"<table><thead><tr><th>metric</th><th>latest</th><th>step</th></tr></thead>"
                 f"<tbody>{rows}</tbody></table>" if rows else "")
        return f"<div><b>{html.escape(self._title())}</b><br>{bar}{table}</div>"

    def __repr__(self) -> str:
        return self.text()

    # --- refreshing --------------------------------------------------------------------------------
    def observe(self, values: Mapping[str, float], step: int | None) -> None:
        """Remember the latest values (called for every logged point); refresh when due."""
        with self._lock:
            for key, value in values.items():
                previous = self.latest.pop(key, None)  # most recent last
                # no step: the key's previous step + 1, as the metrics logger numbers it
                at = step if step is not None else (previous[0] + 1 if previous and previous[0] is not None else 0)
                self.latest[key] = (at, float(value))
                if self.step is None or at > self.step:
                    self.step = at
        if time.monotonic() - self._last >= self.every_s:
            self.refresh()

    def refresh(self) -> None:
        """Redraw the view now."""
        self._last = time.monotonic()
        self.updates += 1
        if self._handle is not None:
            self._handle.update(self)
        else:
            self._write_text()

    def finish(self, status: str) -> None:
        """The run ended: the last redraw, with its final status."""
        self.status = status
        self.refresh()

    def _write_text(self) -> None:
        stream = self._stream or sys.stdout
        stream.write(self.text() + "\n")
        stream.flush()
