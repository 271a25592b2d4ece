"""Two notebooks compared cell by cell, for ``cairn runs diff``: a line diff of ``.ipynb`` JSON is
noise (escaped sources, ids, metadata), so each cell is compared by its source and shown as a
unified diff headed with its cell numbers (``cell 3 -> cell 4 (code)``). Cells are paired by
matching their sources (difflib over the cell list, then edited cells by similarity), so an
inserted cell shows as one added cell and not as every following cell changed. Outputs are compared only when both notebooks kept them.
"""

from __future__ import annotations

import difflib
import io
import json
from typing import Any

PAIR_RATIO = 0.5  # an old and a new cell this alike (difflib's ratio) are one edited cell


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def load_cells(raw: bytes | None) -> list[dict[str, Any]]:
    """``(cell_type, source, outputs text)`` of each cell of a notebook file's bytes (none for None)."""
    if raw is None:
        return []
    nb = json.loads(raw.decode("utf-8"))
    cells = []
    for cell in nb.get("cells") or []:
        outputs = None
        if cell.get("cell_type") == "code" and cell.get("outputs"):
            outputs = "".join(_output_text(o) for o in cell["outputs"])
        cells.append({"type": str(cell.get("cell_type", "code")), "source": _text(cell.get("source")),
                      "outputs": outputs})
    return cells


def _output_text(output: dict[str, Any]) -> str:
    if "text" in output:
        return _text(output["text"])
    if output.get("output_type") == "error":
        return f"{output.get('ename', '')}: {output.get('evalue', '')}\n"
    data = output.get("data") or {}
    if "text/plain" in data:
        return _text(data["text/plain"]) + "\n"
    return "".join(f"<{mime}>\n" for mime in sorted(data))


def _hunks(a: list[str], b: list[str], context: int) -> list[str]:
    """A unified diff's hunks without its two file header lines (the cell header replaces them)."""
    return list(difflib.unified_diff(a, b, n=context))[2:]


def _cell_diff(out: io.StringIO, a: dict[str, Any] | None, b: dict[str, Any] | None, na: int | None,
               nb: int | None, outputs: bool) -> None:
    kind = (b or a or {}).get("type", "code")
    left = f"cell {na}" if na is not None else "(no cell)"
    right = f"cell {nb}" if nb is not None else "(no cell)"
    head = f"@@ {left} -> {right} ({kind}) @@\n"
    body = _hunks(_lines((a or {}).get("source", "")), _lines((b or {}).get("source", "")), 3)
    if outputs and a is not None and b is not None and a.get("outputs") != b.get("outputs"):
        body += ["outputs:\n", *_hunks(_lines(a.get("outputs") or ""), _lines(b.get("outputs") or ""), 1)]
    if a is not None and b is not None and a["type"] != b["type"]:
        body.insert(0, f"cell type {a['type']} -> {b['type']}\n")
    if body:
        out.write(head)
        out.writelines(body)


def diff_notebooks(a_cells: list[dict[str, Any]], b_cells: list[dict[str, Any]], *, outputs: bool | None = None) -> str:
    """Cell by cell unified diff of two cell lists (:func:`load_cells`); cells numbered from 1.
    ``outputs``: compare outputs too (default: when both notebooks have any)."""
    if outputs is None:
        outputs = any(c["outputs"] for c in a_cells) and any(c["outputs"] for c in b_cells)
    out = io.StringIO()
    keys_a = [(c["type"], c["source"]) for c in a_cells]
    keys_b = [(c["type"], c["source"]) for c in b_cells]
    matcher = difflib.SequenceMatcher(a=keys_a, b=keys_b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            if outputs:
                for same_a, same_b in zip(range(i1, i2), range(j1, j2), strict=True):
                    _cell_diff(out, a_cells[same_a], b_cells[same_b], same_a + 1, same_b + 1, outputs)
            continue
        for i, j in _pair(a_cells, b_cells, range(i1, i2), range(j1, j2)):
            _cell_diff(out, a_cells[i] if i is not None else None, b_cells[j] if j is not None else None,
                       None if i is None else i + 1, None if j is None else j + 1, outputs)
    return out.getvalue()


def _similar(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["type"] != b["type"]:
        return False
    matcher = difflib.SequenceMatcher(a=a["source"], b=b["source"])
    return matcher.real_quick_ratio() >= PAIR_RATIO and matcher.quick_ratio() >= PAIR_RATIO and \
        matcher.ratio() >= PAIR_RATIO


def _pair(a_cells: list[dict[str, Any]], b_cells: list[dict[str, Any]], a_range: range,
          b_range: range) -> list[tuple[int | None, int | None]]:
    """Within a run of differing cells, pair each old cell with the next new cell that looks like
    it (an edited cell is one change); the rest are removed or added cells, in order."""
    pairs: list[tuple[int | None, int | None]] = []
    b_left = list(b_range)
    for i in a_range:
        match = next((k for k, j in enumerate(b_left) if _similar(a_cells[i], b_cells[j])), None)
        if match is None:
            pairs.append((i, None))
            continue
        pairs += [(None, j) for j in b_left[:match]]
        pairs.append((i, b_left[match]))
        b_left = b_left[match + 1:]
    return pairs + [(None, j) for j in b_left]


def diff_notebook_files(a: bytes | None, b: bytes | None, label_a: str, label_b: str) -> str:
    """The diff of two ``.ipynb`` files (either may be missing), headed like a file diff; falls
    back to a line diff when a file is not a readable notebook."""
    try:
        body = diff_notebooks(load_cells(a), load_cells(b))
    except (ValueError, UnicodeDecodeError, AttributeError):
        old = (a or b"").decode(errors="replace").splitlines(keepends=True)
        new = (b or b"").decode(errors="replace").splitlines(keepends=True)
        return "".join(difflib.unified_diff(old, new, label_a, label_b))
    return f"--- {label_a}\n+++ {label_b}\n{body}" if body else ""
