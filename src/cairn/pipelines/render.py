"""Drawing a pipeline's DAG: for a terminal (``render_text``, or ``render_rich`` with colours), as a
Mermaid ``flowchart TD`` (``render_mermaid``) and as Graphviz DOT (``render_dot``). Pure: text in,
text out, so the CLI, the API and the web UI draw the same thing.

The terminal drawing lists steps by level (level k: the longest chain of needs from a root has k
edges, so a level's steps can run at once) and each step names the steps it needs (``<- a, b``)
instead of drawing lines: a generated DAG with fan-in and fan-out from many levels up has edges
that cross and skip levels, and lines drawn between columns become unreadable long before ten
steps; a named list stays readable at a thousand. docs/pipelines.md, "Showing a pipeline".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from cairn.pipelines.spec import Pipeline

if TYPE_CHECKING:
    from rich.text import Text

STATES = ("pending", "running", "succeeded", "failed", "skipped", "cached", "waiting_approval")
# state -> (symbol, ASCII symbol, rich style, fill colour, line colour) for every format
_LOOK: dict[str, tuple[str, str, str, str, str]] = {
    "pending": ("○", ".", "dim", "#f5f5f5", "#9e9e9e"),
    "running": ("●", ">", "bold yellow", "#fff3cd", "#d39e00"),
    "succeeded": ("✓", "+", "green", "#d4edda", "#28a745"),
    "failed": ("✗", "x", "bold red", "#f8d7da", "#dc3545"),
    "skipped": ("⊘", "-", "dim", "#e2e3e5", "#6c757d"),
    "cached": ("↺", "=", "cyan", "#d1ecf1", "#17a2b8"),
    "waiting_approval": ("⏸", "?", "magenta", "#e8daef", "#8e44ad"),
}
_ID_COLUMN_MAX = 32  # a longer id pushes only its own line to the right
Segment = tuple[str, str]  # (text, rich style or "")


def check_states(pipeline: Pipeline, states: Mapping[str, str] | None) -> dict[str, str]:
    """``states`` checked against the pipeline: a ValueError names an unknown step or state."""
    if not states:
        return {}
    ids = {step.id for step in pipeline.steps}
    for step_id, state in states.items():
        if step_id not in ids:
            raise ValueError(f"a state is given for {step_id!r}, which is no step in pipeline {pipeline.name!r}")
        if state not in _LOOK:
            raise ValueError(f"step {step_id!r} has state {state!r}; a state is one of {', '.join(STATES)}")
    return dict(states)


def levels_of(pipeline: Pipeline) -> list[list[str]]:
    """The pipeline's levels; computed here (longest path from a root) for a Pipeline made in code
    without them. Steps on a cycle, which a loaded pipeline cannot have, go in a last level."""
    if pipeline.levels:
        return [list(level) for level in pipeline.levels]
    ids = [step.id for step in pipeline.steps]
    needs = {step.id: [n for n in step.needs if n in ids] for step in pipeline.steps}
    level: dict[str, int] = {}
    changed = True
    while changed:  # relax until stable: at most one pass per level
        changed = False
        for step_id in ids:
            if step_id not in level and all(n in level for n in needs[step_id]):
                level[step_id] = 1 + max((level[n] for n in needs[step_id]), default=-1)
                changed = True
    depth = max(level.values(), default=-1) + 1
    out: list[list[str]] = [[] for _ in range(depth)]
    for step_id in ids:
        if step_id in level:
            out[level[step_id]].append(step_id)
    if stuck := [i for i in ids if i not in level]:
        out.append(stuck)
    return out


def _lines(pipeline: Pipeline, states: Mapping[str, str] | None, width: int, ascii_only: bool) -> list[list[Segment]]:
    states = check_states(pipeline, states)
    levels = levels_of(pipeline)
    kinds = {step.id: step.kind for step in pipeline.steps}
    needs = {step.id: step.needs for step in pipeline.steps}
    id_w = min(max((len(s.id) for s in pipeline.steps), default=1), _ID_COLUMN_MAX)
    kind_w = max((len(k) for k in kinds.values()), default=1)
    state_w = max((len(s) for s in states.values()), default=0)
    arrow, rule = ("<-", "-") if ascii_only else ("←", "─")
    plural = "" if len(pipeline.steps) == 1 else "s"
    out: list[list[Segment]] = [[(f"pipeline {pipeline.name}: {len(pipeline.steps)} step{plural} in "
                                  f"{len(levels)} level{'' if len(levels) == 1 else 's'}", "bold")]]
    for k, level in enumerate(levels):
        title = f"{rule}{rule} level {k} "
        out.append([(title + rule * max(2, min(width, 60) - len(title)), "dim")])
        for step_id in level:
            row: list[Segment] = [("  ", "")]
            state = states.get(step_id)
            if states:
                look = _LOOK[state] if state else None
                symbol = (look[1] if ascii_only else look[0]) if look else " "
                row.append((symbol + " ", look[2] if look else ""))
            row += [(step_id.ljust(id_w), "bold"), ("  " + kinds[step_id].ljust(kind_w), "")]
            if states:
                row.append(("  " + (state or "").ljust(state_w), _LOOK[state][2] if state else ""))
            out.append(row)
            if needs[step_id]:
                _add_needs(out, row, f"  {arrow} ", list(needs[step_id]), width)
    return out


def _add_needs(out: list[list[Segment]], row: list[Segment], lead: str, needs: list[str], width: int) -> None:
    """Append ``<- a, b, ...`` to ``row``, wrapping onto indented lines at ``width``."""
    start = sum(len(text) for text, _ in row)
    indent = start + len(lead)
    room = max(width - indent, 20)
    chunks: list[str] = []
    current = ""
    for i, name in enumerate(needs):
        piece = name + ("," if i < len(needs) - 1 else "")
        if current and len(current) + 1 + len(piece) > room:
            chunks.append(current)
            current = piece
        else:
            current = f"{current} {piece}" if current else piece
    chunks.append(current)
    row.append((lead + chunks[0], "dim"))
    for chunk in chunks[1:]:
        out.append([(" " * indent + chunk, "dim")])


def render_text(pipeline: Pipeline, states: Mapping[str, str] | None = None, width: int = 100,
                ascii_only: bool = False) -> str:
    """The DAG by levels, each step with its kind, its state (symbol and word) when ``states``
    gives one, and the steps it needs; ``ascii_only`` draws with ASCII characters only."""
    return "\n".join("".join(text for text, _ in row).rstrip() for row in _lines(pipeline, states, width,
                                                                                  ascii_only)) + "\n"


def render_rich(pipeline: Pipeline, states: Mapping[str, str] | None = None, width: int = 100) -> Text:
    """:func:`render_text`'s drawing as a rich ``Text`` with a colour per state; a rich console
    prints it plain when its output is not a terminal."""
    from rich.text import Text

    text = Text()
    for row in _lines(pipeline, states, width, ascii_only=False):
        for part, style in row:
            text.append(part, style=style or None)
        text.rstrip()
        text.append("\n")
    return text


def node_id(step_id: str) -> str:
    """A node name safe in Mermaid and DOT, one-to-one with step ids: ``n`` (so no id is a keyword
    such as ``end`` or ``graph`` or starts with a digit), letters and digits kept, ``_`` doubled,
    any other character as ``_`` and the hex of its UTF-8 bytes (``fraud-ml`` -> ``nfraud_2dml``)."""
    out = ["n"]
    for char in step_id:
        if char.isascii() and char.isalnum():
            out.append(char)
        elif char == "_":
            out.append("__")
        else:
            out.append("".join(f"_{byte:02x}" for byte in char.encode()))
    return "".join(out)


def _mermaid_text(text: str) -> str:
    """Text for inside a quoted Mermaid label: its entity codes for what would end or mark it up."""
    codes = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;", "`": "#96;",
             "\n": " ", "\r": " "}
    return "".join(codes.get(char, char) for char in text)


def render_mermaid(pipeline: Pipeline, states: Mapping[str, str] | None = None) -> str:
    """A Mermaid ``flowchart TD``: one node per step (label: id, kind and state), one edge per
    need, and one ``classDef`` per state in use with its colours."""
    states = check_states(pipeline, states)
    lines = ["flowchart TD"]
    for step in pipeline.steps:
        label = f"{_mermaid_text(step.id)}<br/>{step.kind}"
        if step.id in states:
            label += f" · {states[step.id]}"
        lines.append(f'    {node_id(step.id)}["{label}"]')
    for step in pipeline.steps:
        for need in step.needs:
            lines.append(f"    {node_id(need)} --> {node_id(step.id)}")
    for state in STATES:
        members = [node_id(step.id) for step in pipeline.steps if states.get(step.id) == state]
        if members:
            _, _, _, fill, line = _LOOK[state]
            lines.append(f"    classDef {state} fill:{fill},stroke:{line},color:#212529")
            lines.append(f"    class {','.join(members)} {state}")
    return "\n".join(lines) + "\n"


def _html(text: str) -> str:
    """Text for a Graphviz HTML-like label: no quoting rule of DOT strings can be broken by it."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("\n", " "))


def render_dot(pipeline: Pipeline, states: Mapping[str, str] | None = None) -> str:
    """Graphviz DOT: a ``digraph`` with one quoted node per step (filled with its state's colour)
    and one edge per need. Labels are HTML-like (``<...>``) with entities, so any id is safe."""
    states = check_states(pipeline, states)
    lines = [f'digraph "{node_id(pipeline.name)}" {{', "    rankdir=TB;",
             '    node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];']
    for step in pipeline.steps:
        label = f"<B>{_html(step.id)}</B><BR/>{step.kind}"
        attrs = ""
        if (state := states.get(step.id)) is not None:
            _, _, _, fill, line = _LOOK[state]
            label += f"<BR/>{state}"
            attrs = f', fillcolor="{fill}", color="{line}"'
        lines.append(f'    "{node_id(step.id)}" [label=<{label}>{attrs}];')
    for step in pipeline.steps:
        for need in step.needs:
            lines.append(f'    "{node_id(need)}" -> "{node_id(step.id)}";')
    lines.append("}")
    return "\n".join(lines) + "\n"
