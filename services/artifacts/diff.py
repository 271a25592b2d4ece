"""Differences between two dataset versions: files added, removed and changed, and for tabular
files (Parquet, Feather/Arrow, CSV) present in both, the schema change and row counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cairn.core import Manifest
from cairn.services.artifacts.blobs import BlobStore

TABULAR = {".parquet": "parquet", ".pq": "parquet", ".feather": "feather", ".arrow": "feather",
           ".csv": "csv"}


def _table_info(path: Path, fmt: str) -> tuple[dict[str, str], int]:
    """(column -> type, rows) read from the file; Parquet and Feather from their metadata."""
    import pyarrow as pa

    if fmt == "parquet":
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path)
        schema, rows = meta.schema_arrow, meta.metadata.num_rows
    elif fmt == "feather":
        from pyarrow import ipc

        with pa.memory_map(str(path)) as source:
            try:
                reader = ipc.open_file(source)
                schema = reader.schema
                rows = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
            except pa.ArrowInvalid:
                table = ipc.open_stream(source).read_all()
                schema, rows = table.schema, table.num_rows
    else:
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(path)
        schema, rows = table.schema, table.num_rows
    return {f.name: str(f.type) for f in schema}, rows


def _tabular_change(blobs: BlobStore, path: str, old: str, new: str) -> dict[str, Any] | None:
    fmt = TABULAR.get(Path(path).suffix.lower())
    if fmt is None:
        return None
    try:
        with blobs.open_verified(old) as p:
            before, rows_before = _table_info(p, fmt)
        with blobs.open_verified(new) as p:
            after, rows_after = _table_info(p, fmt)
    except Exception as err:  # noqa: BLE001 - a file that does not parse is reported, not fatal
        return {"format": fmt, "error": f"could not read as {fmt}: {err}"}
    return {
        "format": fmt,
        "columns_added": {c: t for c, t in after.items() if c not in before},
        "columns_removed": {c: t for c, t in before.items() if c not in after},
        "types_changed": {c: {"from": before[c], "to": t} for c, t in after.items()
                          if c in before and before[c] != t},
        "rows_before": rows_before, "rows_after": rows_after, "rows_change": rows_after - rows_before,
    }


def diff_manifests(blobs: BlobStore, old: Manifest, new: Manifest) -> dict[str, Any]:
    """Added, removed and changed paths with sizes; tabular details for changed tables."""
    before = {e.path: e for e in old.entries}
    after = {e.path: e for e in new.entries}
    added = [{"path": p, "size": e.size, "kind": e.kind} for p, e in after.items() if p not in before]
    removed = [{"path": p, "size": e.size, "kind": e.kind} for p, e in before.items() if p not in after]
    changed = []
    for path, e in after.items():
        o = before.get(path)
        if o is None or (o.kind, o.digest) == (e.kind, e.digest):
            continue
        item: dict[str, Any] = {"path": path, "size_before": o.size, "size_after": e.size,
                                "size_change": e.size - o.size}
        if o.kind == e.kind == "file":
            table = _tabular_change(blobs, path, o.digest, e.digest)
            if table is not None:
                item["table"] = table
        changed.append(item)
    return {"added": added, "removed": removed, "changed": changed,
            "unchanged": sum(1 for p, e in after.items() if p in before and before[p].digest == e.digest),
            "size_before": old.total_size, "size_after": new.total_size}
