"""A drift report as one self-contained HTML page: a table of methods, scores and decisions,
and per column an inline SVG of the reference and current distributions. No scripts, no
external files, every name escaped: the page can be mailed or stored as an artifact."""

from __future__ import annotations

import math
from html import escape

import numpy as np

from cairn.monitor.columns import CategoricalProfile, NumericProfile
from cairn.monitor.drift import DatasetDrift
from cairn.monitor.profile import Profile

WIDTH, HEIGHT, BARS_MAX = 360, 140, 20
STYLE = """body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}tr.drifted td{background:#fde2e1}
.ref{fill:#5b8def}.cur{fill:#f08a4b}figure{display:inline-block;margin:1em}"""


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"


def _bins(reference: NumericProfile | CategoricalProfile,
          current: NumericProfile | CategoricalProfile) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Labels and shares per bin: histogram bins for numbers, the most frequent categories
    (then "other") for categories."""
    if isinstance(reference, NumericProfile) and isinstance(current, NumericProfile):
        edges = [f"{e:.3g}" for e in reference.edges]
        labels = [f"<{edges[0]}" if edges else "all"] + \
            [f"{a}..{b}" for a, b in zip(edges, edges[1:])] + ([f">={edges[-1]}"] if edges else [])
        ref, cur = reference.hist.astype(float), current.hist.astype(float)
    else:
        assert isinstance(reference, CategoricalProfile) and isinstance(current, CategoricalProfile)
        union = set(reference.counts) | set(current.counts)
        ranked = sorted(union, key=lambda v: (-(reference.counts.get(v, 0)
                                                + current.counts.get(v, 0)), v))[:BARS_MAX]
        ref = np.array([reference.counts.get(v, 0) for v in ranked], float)
        cur = np.array([current.counts.get(v, 0) for v in ranked], float)
        labels = list(ranked) + ["other"]
        ref = np.append(ref, reference.count - ref.sum())
        cur = np.append(cur, current.count - cur.sum())
    return labels, ref / max(ref.sum(), 1.0), cur / max(cur.sum(), 1.0)


def _svg(name: str, reference: NumericProfile | CategoricalProfile,
         current: NumericProfile | CategoricalProfile) -> str:
    labels, ref, cur = _bins(reference, current)
    top = max(float(ref.max(initial=0)), float(cur.max(initial=0)), 1e-12)
    slot = WIDTH / max(len(labels), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT + 20}" '
             f'role="img" aria-label="{escape(name)}: reference vs current">']
    for i, label in enumerate(labels):
        for j, (share, css) in enumerate(((ref[i], "ref"), (cur[i], "cur"))):
            h = HEIGHT * share / top
            x = i * slot + j * slot / 2 + 1
            parts.append(f'<rect class="{css}" x="{x:.1f}" y="{HEIGHT - h:.1f}" '
                         f'width="{max(slot / 2 - 2, 1):.1f}" height="{h:.1f}">'
                         f'<title>{escape(label)} {css}: {share:.3f}</title></rect>')
    parts.append(f'<text x="0" y="{HEIGHT + 15}" font-size="11">blue: reference, '
                 'orange: current</text></svg>')
    return "".join(parts)


def drift_html(drift: DatasetDrift, reference: Profile, current: Profile, *, title: str) -> str:
    """The page for one drift result and the two profiles it was computed from."""
    rows, figures = [], []
    for column in drift.columns:
        css = ' class="drifted"' if column.drifted else ""
        rows.append(
            f"<tr{css} data-column=\"{escape(column.column)}\" data-drifted=\""
            f"{'true' if column.drifted else 'false'}\"><td>{escape(column.column)}</td>"
            f"<td>{escape(column.kind)}</td><td>{escape(column.method)}</td>"
            f"<td>{_number(column.score)}</td><td>{_number(column.threshold)}</td>"
            f"<td>{_number(column.error_bound)}</td>"
            f"<td>{'drift' if column.drifted else 'no drift'}</td></tr>")
        ref, cur = reference.columns.get(column.column), current.columns.get(column.column)
        if ref is not None and cur is not None:
            figures.append(f"<figure><figcaption>{escape(column.column)}</figcaption>"
                           f"{_svg(column.column, ref, cur)}</figure>")
    verdict = "drift detected" if drift.drifted else "no dataset drift"
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{escape(title)}</h1><p id=\"summary\">{verdict}: {drift.drifted_columns} of "
            f"{len(drift.columns)} columns drifted (share {drift.share:.3g}, dataset threshold "
            f"{drift.drift_share:.3g}); reference {reference.rows} rows, current {current.rows} "
            "rows.</p><table id=\"columns\"><thead><tr><th>column</th><th>kind</th><th>method</th>"
            "<th>score</th><th>threshold</th><th>error bound</th><th>decision</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table><section id=\"charts\">{''.join(figures)}"
            "</section></body></html>")
