"""The ``data_check`` step: the data a pipeline is about to use, profiled and compared with a
reference profile using the monitor's drift methods (cairn.monitor: the same profiles, methods,
default thresholds and dataset rule as a deployment's drift).

What is checked (``dataset``): ``dataset:NAME[@vN]`` (a dataset version: the newest when the step
runs if no version is named) or ``artifact:STEP/NAME`` (an earlier step's output, a file or a
directory). Its table files are read with Arrow and profiled together: Parquet, Arrow IPC/Feather
and CSV, told apart by their suffix (``.parquet``/``.pq``, ``.arrow``/``.feather``/``.ipc``,
``.csv``) or, for a file without one, by Parquet's and Arrow's magic bytes. Other files are
ignored; none at all fails the step.

What it is compared with (``reference``): ``profile:<digest>`` (a profile registered in the
monitor), ``deployment:NAME`` (that deployment's reference profile, as the monitor chooses it) or
``dataset:NAME@vN`` (that dataset version, profiled the same way). The current data is profiled
with the reference's histogram edges, so binned methods compare the same bins.

The step succeeds with metrics ``drift_share`` (drifted columns / compared columns),
``drifted_columns``, ``columns`` and ``drift.<column>`` (each column's deciding score); when the
share reaches ``drift_share`` it fails, naming the drifted columns with their scores and
thresholds.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq

from cairn.core.manifest import MANIFEST_HEADER
from cairn.pipelines.spec import DataCheck, Ref

if TYPE_CHECKING:  # imported where a check runs: SciPy and pandas cost the service ~0.8 s at each start
    from cairn.monitor.drift import DatasetDrift
    from cairn.monitor.profile import Profile

MAX_BYTES = 1 << 30  # what one check reads in all: more is a failure, not a stalled service
MAX_FILES = 10_000
PARQUET, ARROW, CSV = ".parquet", ".arrow", ".csv"
SUFFIXES = {".parquet": PARQUET, ".pq": PARQUET, ".arrow": ARROW, ".feather": ARROW, ".ipc": ARROW, ".csv": CSV}


class CheckFailed(Exception):
    """The check cannot be made or the data drifted: the step fails with this message."""


@dataclass(frozen=True)
class Sources:
    """How the check reaches stored bytes (the engine passes its clients' calls)."""

    blob: Callable[[str, int], Awaitable[bytes]]          # digest, limit -> bytes
    manifest: Callable[[str], Awaitable[dict[str, Any]]]  # digest -> {"entries": [{path, kind, size, digest}]}
    profile: Callable[[str], Awaitable[bytes]]            # registered profile digest -> JSON bytes
    deployment_reference: Callable[[str], Awaitable[str | None]]  # deployment -> profile digest
    dataset_digest: Callable[[str, int | None], tuple[int, str]]  # name, version -> (version, manifest)
    output_digest: Callable[[str, str], str | None]       # step, output name -> digest


def kind_of(name: str, head: bytes) -> str | None:
    """A table file's format by suffix, else by magic bytes; None for a file that is no table."""
    dot = name.rfind(".")
    if dot > name.rfind("/"):
        found = SUFFIXES.get(name[dot:].lower())
        if found is not None:
            return found
    if head.startswith(b"PAR1"):
        return PARQUET
    if head.startswith(b"ARROW1"):
        return ARROW
    return None


def read_table(kind: str, data: bytes) -> pa.Table:
    if kind == PARQUET:
        return pq.read_table(io.BytesIO(data))
    if kind == ARROW:
        return feather.read_table(io.BytesIO(data))
    return pacsv.read_csv(io.BytesIO(data))


class Budget:
    """Bytes left to read for one check."""

    def __init__(self, total: int = MAX_BYTES) -> None:
        self.left = total

    def take(self, size: int, what: str) -> None:
        if size > self.left:
            raise CheckFailed(f"{what} would take the check over {MAX_BYTES} bytes; check a smaller dataset")
        self.left -= size


async def tables_of(sources: Sources, digest: str, what: str, budget: Budget) -> list[pa.Table]:
    """The tables in a stored file or directory (a manifest), in the manifest's order."""
    data = await sources.blob(digest, budget.left)
    budget.take(len(data), what)
    if not data.startswith(MANIFEST_HEADER):
        kind = kind_of("", data[:8]) or CSV  # a lone file: a table unless it says otherwise
        return [await asyncio.to_thread(_read, kind, data, what)]
    files = [e for e in (await sources.manifest(digest))["entries"] if e["kind"] == "file"]
    if len(files) > MAX_FILES:
        raise CheckFailed(f"{what} has {len(files)} files; a check reads at most {MAX_FILES}")
    tables = []
    for entry in files:
        path = str(entry["path"])
        by_suffix = kind_of(path, b"")
        if by_suffix is None and "." in path.rsplit("/", 1)[-1]:
            continue  # a file with another suffix (a README, a schema): not data
        budget.take(int(entry["size"]), what)
        body = await sources.blob(entry["digest"], int(entry["size"]))
        found = by_suffix or kind_of(path, body[:8])
        if found is not None:
            tables.append(await asyncio.to_thread(_read, found, body, f"{what}: {path}"))
    return tables


def _read(kind: str, data: bytes, what: str) -> pa.Table:
    try:
        return read_table(kind, data)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as err:
        raise CheckFailed(f"{what} is not a readable {kind.lstrip('.')} table: {err}") from err


def combined(tables: list[pa.Table], what: str) -> pa.Table:
    if not tables:
        raise CheckFailed(f"{what} holds no table (Parquet, Arrow/Feather or CSV file) to check")
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise CheckFailed(f"{what}: its tables do not share one schema: {err}") from err


async def current_table(sources: Sources, ref: Ref, budget: Budget) -> tuple[pa.Table, str]:
    """The data the check is about, and what it was (``dataset:fraud@v3``, ``artifact:prep/out``)."""
    if ref.kind == "dataset":
        version, digest = sources.dataset_digest(ref.name, ref.version)
        what = f"dataset:{ref.name}@v{version}"
    else:
        assert ref.step is not None
        found = sources.output_digest(ref.step, ref.name)
        if found is None:
            raise CheckFailed(f"step {ref.step!r} has no output {ref.name!r} to check")
        digest, what = found, f"artifact:{ref.step}/{ref.name}"
    return combined(await tables_of(sources, digest, what, budget), what), what


async def reference_profile(sources: Sources, reference: str, budget: Budget) -> Profile:
    from cairn.monitor.profile import Profile, profile_table

    kind, _, name = reference.partition(":")
    if kind == "deployment":
        digest = await sources.deployment_reference(name)
        if digest is None:
            raise CheckFailed(f"deployment {name!r} has no reference profile: set one (cairn monitor reference) "
                              "or name a profile or dataset version")
        kind, name = "profile", digest
    if kind == "profile":
        try:
            return Profile.from_json(await sources.profile(name))
        except ValueError as err:
            raise CheckFailed(f"profile {name} cannot be read: {err}") from err
    dataset, _, version = name.partition("@v")
    _, digest = sources.dataset_digest(dataset, int(version))
    what = f"dataset:{dataset}@v{version}"
    table = combined(await tables_of(sources, digest, what, budget), what)
    return await asyncio.to_thread(profile_table, table)


async def run_check(check: DataCheck, sources: Sources) -> dict[str, Any]:
    """The step's metrics when the data did not drift; raises :class:`CheckFailed` when it did."""
    from cairn.monitor.drift import dataset_drift
    from cairn.monitor.profile import profile_table

    budget = Budget()
    reference = await reference_profile(sources, check.reference, budget)
    table, what = await current_table(sources, check.dataset, budget)
    current = await asyncio.to_thread(profile_table, table, reference=reference)
    try:
        drift = dataset_drift(reference, current, methods=check.methods, thresholds=check.thresholds,
                              drift_share=check.drift_share)
    except ValueError as err:  # a method for a column the data lacks, ...
        raise CheckFailed(f"{what} against {check.reference}: {err}") from err
    if not drift.columns:
        raise CheckFailed(f"{what} and {check.reference} have no feature column in common to compare")
    if drift.drifted:
        raise CheckFailed(describe(drift, what, check.reference))
    metrics: dict[str, Any] = {"drift_share": drift.share, "drifted_columns": drift.drifted_columns,
                               "columns": len(drift.columns), "rows": table.num_rows}
    metrics.update({f"drift.{c.column}": c.score for c in drift.columns if c.score == c.score})  # NaN: left out
    return metrics


def describe(drift: DatasetDrift, what: str, reference: str) -> str:
    drifted = [c for c in drift.columns if c.drifted]
    named = ", ".join(f"{c.column} ({c.method} {c.score:.4g} vs {c.threshold:g})" for c in drifted[:10])
    more = f" and {len(drifted) - 10} more" if len(drifted) > 10 else ""
    return (f"{what} drifted from {reference}: {drift.drifted_columns} of {len(drift.columns)} columns "
            f"(share {drift.share:.3g} >= {drift.drift_share:g}): {named}{more}")
