"""Content fingerprints of Arrow tables, independent of how the table is stored.

The fingerprint depends on the column names and types, the row count, and every value and null;
not on chunking, slicing, row groups, compression, dictionary unification, or whether the table
was read back from Parquet or Feather. Encoding, version 1:

- schema: per field ``<len(name)>:<name>:<type key>\\n``; the type key is Arrow's type name with
  list item field names and nullability left out (Parquet renames list items to "element") and
  struct field names kept. Schema metadata and the nullable flag are not content.
- per column, a sequence of *sections*, each hashed with BLAKE3, and the column digest is BLAKE3
  of the concatenated section digests:
  - validity: one byte per row, 1 for null, 0 otherwise;
  - boolean: one byte per row (nulls as 0); fixed-width types (integers, floats, temporal,
    decimals, fixed-size binary): each row's little-endian bytes, nulls as zero bytes;
  - strings and binaries: int64 lengths (nulls as 0), then the non-null values' bytes;
  - lists (and maps as lists of key/value structs, fixed-size lists as lists): int64 lengths
    (nulls as 0), then the sections of the flattened child values;
  - structs: the sections of each child, with the struct's nulls applied to it;
  - dictionaries are decoded and extension types hashed through their storage (their type key
    still tells them apart).
- fingerprint = BLAKE3(``b"cairn-table/1\\n"`` + ``<rows>\\n`` + schema + column digests), hex.

Types Parquet cannot store come back as others (date64 as date32, for instance) and therefore
fingerprint differently, as any type change does.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cairn import _core
from cairn.core import device as _device
from cairn.core.device import Device
from cairn.core.errors import UnsupportedTypeError

__all__ = ["fingerprint_table"]

_HEADER = b"cairn-table/1\n"

Sections = list[bytes | np.ndarray]


Hasher = Callable[[object], bytes]


def _cpu_hash(data: object) -> bytes:
    return _core.blake3(data, 0)


def _gpu_hash(data: object) -> bytes:
    return _core.blake3_cuda_host(data)


def fingerprint_table(table: pa.Table | pa.RecordBatch, *, device: Device = "auto") -> str:
    """Hex BLAKE3 content fingerprint of an Arrow table (see the module docstring for the rules).

    ``device="cuda"`` hashes the sections on the GPU (GpuUnavailableError without one); ``"auto"``
    and ``"cpu"`` hash them on the CPU: they are host buffers, which the CPU hashes faster than
    they can be copied to the GPU (see :mod:`cairn.core.device`). The fingerprint is the same.
    """
    if _device.check_device(device) == "cuda":
        _device.require_gpu("fingerprint_table")
    digest = _gpu_hash if device == "cuda" else _cpu_hash
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    parts = [_HEADER, b"%d\n" % table.num_rows]
    for f in table.schema:
        name = f.name.encode("utf-8")
        parts.append(b"%d:%s:%s\n" % (len(name), name, _type_key(f.type).encode("utf-8")))
    for f, column in zip(table.schema, table.columns):
        parts.append(_column_digest(f.name, column, digest))
    return digest(b"".join(parts)).hex()


def _type_key(t: pa.DataType) -> str:
    """Canonical type name: Arrow's, minus list item names and nullability."""
    if pa.types.is_dictionary(t):
        return f"dictionary<{_type_key(t.index_type)},{_type_key(t.value_type)},ordered={int(t.ordered)}>"
    if pa.types.is_map(t):
        return f"map<{_type_key(t.key_type)},{_type_key(t.item_type)},sorted={int(t.keys_sorted)}>"
    if pa.types.is_large_list(t):
        return f"large_list<{_type_key(t.value_type)}>"
    if pa.types.is_fixed_size_list(t):
        return f"fixed_size_list<{_type_key(t.value_type)}>[{t.list_size}]"
    if pa.types.is_list(t):
        return f"list<{_type_key(t.value_type)}>"
    if pa.types.is_struct(t):
        fields = (t.field(i) for i in range(t.num_fields))
        inner = ",".join(f"{len(f.name.encode())}:{f.name}:{_type_key(f.type)}" for f in fields)
        return f"struct<{inner}>"
    if isinstance(t, pa.ExtensionType):
        return f"extension<{t.extension_name},{_type_key(t.storage_type)}>"
    return str(t)


def _column_digest(name: str, column: pa.ChunkedArray, digest: Hasher) -> bytes:
    chunks = [_normalize(name, c) for c in column.chunks]
    if not chunks:
        chunks = [_normalize(name, pa.array([], type=column.type))]
    arr = chunks[0] if len(chunks) == 1 else pa.concat_arrays(chunks)
    sections: Sections = []
    _encode(name, arr, sections)
    return digest(b"".join(digest(s) for s in sections))


def _normalize(name: str, arr: pa.Array) -> pa.Array:
    """Same values in a layout _encode handles: dictionaries decoded, maps as lists, ..."""
    t = arr.type
    if pa.types.is_dictionary(t):
        return _normalize(name, arr.dictionary_decode())
    if isinstance(t, pa.ExtensionType):
        return _normalize(name, arr.storage)
    if pa.types.is_map(t):
        entry = pa.struct([("key", t.key_type), ("value", t.item_type)])
        return arr.cast(pa.list_(entry))
    if pa.types.is_fixed_size_list(t):
        return arr.cast(pa.list_(t.value_type))
    if getattr(pa.types, "is_string_view", lambda _t: False)(t):
        return arr.cast(pa.large_string())
    if getattr(pa.types, "is_binary_view", lambda _t: False)(t):
        return arr.cast(pa.large_binary())
    if getattr(pa.types, "is_run_end_encoded", lambda _t: False)(t):
        return _normalize(name, pc.run_end_decode(arr))
    return arr


def _validity(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.zeros(len(arr), dtype=np.uint8)
    return pc.is_null(arr).to_numpy(zero_copy_only=False).view(np.uint8)


def _encode(name: str, arr: pa.Array, out: Sections) -> None:
    """Appends the canonical sections of one (normalized) array."""
    t = arr.type
    n = len(arr)
    out.append(_validity(arr))
    if pa.types.is_null(t):
        return
    if pa.types.is_boolean(t):
        out.append(pc.fill_null(arr, False).to_numpy(zero_copy_only=False).view(np.uint8))
        return
    if pa.types.is_string(t) or pa.types.is_binary(t):
        _encode_binary(arr, np.int32, out)
        return
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        _encode_binary(arr, np.int64, out)
        return
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        lengths = pc.fill_null(pc.list_value_length(arr), 0)
        out.append(lengths.to_numpy(zero_copy_only=False).astype("<i8"))
        _encode(name, _normalize(name, arr.flatten()), out)
        return
    if pa.types.is_struct(t):
        for child in arr.flatten():
            _encode(name, _normalize(name, child), out)
        return
    if _is_fixed_width(arr):
        width = t.bit_width // 8
        buf = arr.buffers()[1]
        raw = np.frombuffer(buf, dtype=np.uint8, count=(arr.offset + n) * width) if buf else None
        values = np.zeros((n, width), np.uint8) if raw is None else raw[arr.offset * width :]
        if arr.null_count:
            values = values.reshape(n, width).copy()
            values[pc.is_null(arr).to_numpy(zero_copy_only=False)] = 0
        out.append(np.ascontiguousarray(values))
        return
    raise UnsupportedTypeError(
        f"column {name!r} holds type {t}, which table fingerprints do not cover (supported: "
        "null, boolean, numbers, temporal, decimal, (large) string/binary, fixed-size binary, "
        "lists, maps, structs, dictionaries, extension types over those)"
    )


def _is_fixed_width(arr: pa.Array) -> bool:
    try:
        bits = arr.type.bit_width
    except ValueError:
        return False
    return bits % 8 == 0 and len(arr.buffers()) == 2


def _encode_binary(arr: pa.Array, offset_type: type[np.signedinteger], out: Sections) -> None:
    if arr.null_count:
        arr = pc.fill_null(
            arr,
            pa.scalar(
                b"" if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type) else "",
                arr.type,
            ),
        )
    n = len(arr)
    _validity_buf, offsets_buf, data_buf = arr.buffers()
    if n == 0 or offsets_buf is None:
        out.append(np.zeros(0, dtype="<i8"))
        out.append(b"")
        return
    offsets = np.frombuffer(offsets_buf, dtype=offset_type, count=arr.offset + n + 1)[arr.offset :]
    out.append(np.diff(offsets).astype("<i8"))
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    out.append(np.ascontiguousarray(data[offsets[0] : offsets[-1]]))
