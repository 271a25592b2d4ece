"""Preview routes for the web UI's run page: the first rows of a table file (CSV, Parquet, Arrow)
and the files of a code snapshot archive (a tar.gz, docs/reproducibility.md).

A browser cannot read Parquet or unpack a 200 MB archive cheaply, so the artifacts service, which
holds the verified bytes, answers small JSON views of them. Reading follows the blob rules
(services/artifacts/visibility.py): only blobs one of the caller's projects holds, 404 otherwise.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import io
import math
import tarfile
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from cairn.kernel.errors import InvalidInput, NotFound
from cairn.kernel.identity import SIGNED_IN, requires
from cairn.services.artifacts.api_blobs import Blobs, Digest, Store, settled_reads
from cairn.services.artifacts.visibility import check_readable

router = APIRouter(tags=["blobs"], dependencies=[Depends(settled_reads)])
MAX_ROWS = 1000
MAX_ARCHIVE_FILES = 20_000
MAX_TEXT = 1 << 20
TableFormat = Literal["csv", "parquet", "arrow"]


def _cell(value: Any) -> Any:
    """A JSON-safe cell: NaN/inf, dates, decimals and bytes as text; nested values as given."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (datetime.date, datetime.time, datetime.timedelta, decimal.Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [_cell(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _cell(v) for k, v in value.items()}
    return value


def _head(batches: Any, rows: int) -> tuple[list[Any], int | None]:
    """The batches holding the first ``rows`` rows, and the row count of all of them (None when
    a later batch cannot be read, e.g. a CSV column whose type changes past the first block)."""
    import pyarrow as pa

    head, total = [], 0
    try:
        for batch in batches:
            if total < rows:
                head.append(batch)
            total += batch.num_rows
    except pa.ArrowInvalid:
        if not head:
            raise
        return head, None
    return head, total


def _arrow_table(path: FsPath, fmt: str, rows: int) -> tuple[Any, int | None]:
    """(a pyarrow table of at most ``rows`` rows, the file's total row count). Arrow files are
    memory-mapped, so counting their rows reads no data."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.ipc as ipc
    import pyarrow.parquet as pq

    if fmt == "parquet":
        parquet = pq.ParquetFile(path)
        first = next(parquet.iter_batches(batch_size=rows), None)
        table = pa.Table.from_batches([first]) if first is not None else parquet.schema_arrow.empty_table()
        return table, parquet.metadata.num_rows
    if fmt == "arrow":
        source = pa.memory_map(str(path))
        try:
            reader: Any = ipc.open_file(source)
            batches: Any = (reader.get_batch(i) for i in range(reader.num_record_batches))
        except pa.ArrowInvalid:
            source.seek(0)
            reader = ipc.open_stream(source)
            batches = reader
        head, total = _head(batches, rows)
        return pa.Table.from_batches(head, schema=reader.schema).slice(0, rows), total
    reader = pacsv.open_csv(path)
    head, total = _head(reader, rows)
    return pa.Table.from_batches(head, schema=reader.schema).slice(0, rows), total


def read_table(path: FsPath, fmt: str, rows: int) -> dict[str, Any]:
    """``{columns: [{name, type}], rows: [[...]], total}`` for the first ``rows`` rows (``total``
    null when the rest of the file could not be counted)."""
    import pyarrow as pa

    try:
        table, total = _arrow_table(path, fmt, rows)
    except (pa.ArrowException, OSError) as err:
        raise InvalidInput(f"the blob is not a readable {fmt} file ({err}); pick the format that matches "
                           "the file, or download it", details={"field": "format"}) from None
    columns = [{"name": f.name, "type": str(f.type)} for f in table.schema]
    data = table.to_pylist()
    return {"columns": columns, "rows": [[_cell(r[c["name"]]) for c in columns] for r in data],
            "total": total}


@router.get("/blobs/{digest}/table", **requires(SIGNED_IN))
async def table_preview(digest: Digest, request: Request, blobs: Blobs, store: Store,
                        format: Annotated[TableFormat, Query(description="how to read the file")],
                        rows: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 50) -> dict[str, Any]:
    """The first ``rows`` rows of a CSV, Parquet or Arrow (IPC file or stream) blob, and its row
    count; a blob that is not such a file is a 422 saying so."""
    check_readable(request, store, digest)

    def read() -> dict[str, Any]:
        with blobs.open_verified(digest) as path:
            return read_table(path, format, rows)
    return await asyncio.to_thread(read)


def _members(path: FsPath) -> list[tarfile.TarInfo]:
    try:
        with tarfile.open(path, "r:*") as tar:
            members = []
            for member in tar:
                if member.isfile():
                    members.append(member)
                    if len(members) > MAX_ARCHIVE_FILES:
                        break
            return members
    except (tarfile.TarError, OSError, EOFError) as err:
        raise InvalidInput(f"the blob is not a code archive (tar.gz): {err}", details={"field": "digest"}) from None


@router.get("/blobs/{digest}/archive", **requires(SIGNED_IN))
async def archive_listing(digest: Digest, request: Request, blobs: Blobs, store: Store) -> dict[str, Any]:
    """The regular files of a code snapshot archive, ``{files: [{path, size}], truncated}`` (at
    most 20,000 files)."""
    check_readable(request, store, digest)

    def read() -> dict[str, Any]:
        with blobs.open_verified(digest) as path:
            members = _members(path)
        return {"files": [{"path": m.name, "size": m.size} for m in members[:MAX_ARCHIVE_FILES]],
                "truncated": len(members) > MAX_ARCHIVE_FILES}
    return await asyncio.to_thread(read)


def read_archive_file(path: FsPath, name: str, limit: int) -> dict[str, Any]:
    """One file of an archive as text: ``{path, size, text, truncated, binary}`` (``text`` is
    null for a binary file)."""
    try:
        with tarfile.open(path, "r:*") as tar:
            try:
                member = tar.getmember(name)
            except KeyError:
                raise NotFound(f"the archive has no file {name!r}") from None
            src = tar.extractfile(member) if member.isfile() else None
            if src is None:
                raise NotFound(f"{name!r} in the archive is not a regular file")
            with src:
                data = src.read(limit)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise InvalidInput(f"the blob is not a code archive (tar.gz): {err}", details={"field": "digest"}) from None
    truncated = member.size > len(data)
    binary = b"\0" in data[:8192]
    text = None
    if not binary:
        try:
            text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="strict").read()
        except UnicodeDecodeError as err:
            if truncated and err.start >= len(data) - 3:  # a character cut by the limit
                text = data[:err.start].decode()
            else:
                binary = True
    return {"path": name, "size": member.size, "text": text, "truncated": truncated, "binary": binary}


@router.get("/blobs/{digest}/archive/file", **requires(SIGNED_IN))
async def archive_file(digest: Digest, request: Request, blobs: Blobs, store: Store,
                       path: Annotated[str, Query(min_length=1, max_length=4096, description="file in the archive")],
                       limit: Annotated[int, Query(ge=1, le=MAX_TEXT)] = 200 * 1024) -> dict[str, Any]:
    """One file of a code snapshot archive as text, its first ``limit`` bytes (``truncated`` says
    when there is more); 404 for a name the archive does not hold."""
    check_readable(request, store, digest)

    def read() -> dict[str, Any]:
        with blobs.open_verified(digest) as blob:
            return read_archive_file(blob, path, limit)
    return await asyncio.to_thread(read)
