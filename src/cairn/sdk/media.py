"""Rich media of a run: images, figures, tables, text and HTML, stored as content-addressed blobs
and indexed on the run by key and step (docs/media.md).

Each call turns its input into bytes here (PNG, Parquet, HTML, UTF-8 text), uploads them (and a
PNG thumbnail for images and matplotlib figures) as blobs into the run's project, then asks the
artifact store to index them (``POST .../runs/{run}/media``), which checks that the project holds
the bytes. PIL, numpy, matplotlib, plotly, pandas and pyarrow are imported only when a call needs
them, so ``import cairn`` stays fast."""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cairn.core import blake3
from cairn.protocol import MEDIA_KINDS, MEDIA_THUMBNAIL_PX, media_key_problem

if TYPE_CHECKING:
    from cairn.sdk.client import Client

BASE = "/api/v1/artifacts"
PARQUET = "application/vnd.apache.parquet"


def _q(part: str) -> str:
    return quote(part, safe="")


def _check(key: str, step: int | None) -> None:
    """Refuse a bad key or step before any upload (the store refuses them too)."""
    problem = media_key_problem(key)
    if problem is not None:
        raise ValueError(f"media key {key!r} is not valid: {problem}")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 0):
        raise ValueError(f"step {step!r} is not valid: use a whole number >= 0")


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency of matplotlib, usually present
        raise ImportError("run.log_image needs Pillow: pip install pillow") from None
    return Image


def to_pil(image: Any) -> Any:
    """A PIL image from a PIL image, a file path, or a numpy array (HxW, HxWx1/3/4; uint8 0..255
    or float 0..1, clipped)."""
    Image = _pil()
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (str, os.PathLike)) or hasattr(image, "read"):  # a file, or file-like
        with Image.open(image) as opened:
            opened.load()
            return opened.copy()
    import numpy as np

    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"an image array must be HxW, HxWx3 or HxWx4; this one is {array.shape}")
    if array.dtype.kind == "f":
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 255:
            raise ValueError("an integer image array must hold values 0..255 (floats: 0..1)")
        array = array.astype(np.uint8)
    return Image.fromarray(array)


def png_bytes(image: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def thumbnail_png(image: Any) -> bytes:
    """A PNG no larger than MEDIA_THUMBNAIL_PX on its longer side (the web UI's slider)."""
    small = image.copy()
    small.thumbnail((MEDIA_THUMBNAIL_PX, MEDIA_THUMBNAIL_PX))
    return png_bytes(small)


def figure_bytes(fig: Any) -> tuple[bytes, str, bytes | None, str | None]:
    """(bytes, media type, thumbnail PNG or None, note) of a matplotlib or plotly figure. A plotly
    figure is kept as HTML; its PNG thumbnail needs kaleido, and without it there is none (the
    note says so)."""
    module = type(fig).__module__
    if module.startswith("plotly"):
        html = fig.to_html(include_plotlyjs="cdn", full_html=True).encode()
        try:
            png = fig.to_image(format="png", width=MEDIA_THUMBNAIL_PX * 2, height=MEDIA_THUMBNAIL_PX * 2)
        except Exception as err:  # kaleido missing (ValueError) or unable to start a browser
            return html, "text/html", None, f"plotly figure stored as HTML only, no PNG thumbnail: {err}"
        return html, "text/html", thumbnail_png(to_pil(io.BytesIO(png))), None
    if hasattr(fig, "savefig"):  # a matplotlib Figure (or anything that saves like one)
        out = io.BytesIO()
        fig.savefig(out, format="png", bbox_inches="tight")
        data = out.getvalue()
        return data, "image/png", thumbnail_png(to_pil(io.BytesIO(data))), None
    raise TypeError(f"log_figure takes a matplotlib or plotly figure, not {type(fig).__name__}")


def table_bytes(table: Any) -> bytes:
    """Parquet bytes of a pandas DataFrame, a pyarrow Table or RecordBatch, or a dict of columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    elif isinstance(table, dict):
        table = pa.table(table)
    elif not isinstance(table, pa.Table):
        if not hasattr(table, "to_parquet"):
            raise TypeError(f"log_table takes a pandas DataFrame or a pyarrow Table, not {type(table).__name__}")
        table = pa.Table.from_pandas(table, preserve_index=False)
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


class Media:
    """Uploads a run's media and indexes them (``ActiveRun.log_image`` & co. delegate here)."""

    def __init__(self, client: Client, project: str, run_id: str) -> None:
        self.client = client
        self.project = project
        self.run_id = run_id

    def _upload(self, data: bytes) -> str:
        digest = blake3(data).hex()
        if not self.client.artifacts.missing(self.project, [digest]):
            return digest
        with tempfile.TemporaryDirectory(prefix="cairn-media-") as tmp:
            path = Path(tmp) / "blob"
            path.write_bytes(data)
            self.client.artifacts.upload_blob(self.project, path, digest)
        return digest

    def log(self, key: str, kind: str, data: bytes, media_type: str, *, step: int | None = None,
            thumbnail: bytes | None = None) -> dict[str, Any]:
        """Upload ``data`` (and ``thumbnail``) and index them under ``key`` at ``step``."""
        _check(key, step)
        if kind not in MEDIA_KINDS:
            raise ValueError(f"media kind {kind!r} is not one of {', '.join(MEDIA_KINDS)}")
        body: dict[str, Any] = {"key": key, "kind": kind, "digest": self._upload(data), "media_type": media_type}
        if step is not None:
            body["step"] = step
        if thumbnail is not None:
            body["thumbnail_digest"] = self._upload(thumbnail)
        return self.client.request(
            "POST", f"{BASE}/projects/{_q(self.project)}/runs/{_q(self.run_id)}/media", json=body)

    def log_image(self, key: str, image: Any, step: int | None = None) -> dict[str, Any]:
        _check(key, step)
        pil = to_pil(image)
        return self.log(key, "image", png_bytes(pil), "image/png", step=step, thumbnail=thumbnail_png(pil))

    def log_figure(self, key: str, fig: Any, step: int | None = None) -> dict[str, Any]:
        _check(key, step)
        data, media_type, thumb, note = figure_bytes(fig)
        if note:
            warnings.warn(note, stacklevel=3)
        return {**self.log(key, "figure", data, media_type, step=step, thumbnail=thumb),
                **({"note": note} if note else {})}

    def log_table(self, key: str, table: Any, step: int | None = None) -> dict[str, Any]:
        _check(key, step)
        return self.log(key, "table", table_bytes(table), PARQUET, step=step)

    def log_text(self, key: str, text: str, step: int | None = None) -> dict[str, Any]:
        if not isinstance(text, str):
            raise TypeError(f"log_text takes a str, not {type(text).__name__}")
        return self.log(key, "text", text.encode(), "text/plain", step=step)

    def log_html(self, key: str, html: str, step: int | None = None) -> dict[str, Any]:
        if not isinstance(html, str):
            raise TypeError(f"log_html takes a str, not {type(html).__name__}")
        return self.log(key, "html", html.encode(), "text/html", step=step)


def list_media(client: Client, project: str, run_id: str, *, key: str | None = None, kind: str | None = None,
               step_min: int | None = None, step_max: int | None = None) -> list[dict[str, Any]]:
    """Every media entry of a run (all pages), filtered."""
    params: dict[str, Any] = {k: v for k, v in (("key", key), ("kind", kind), ("step_min", step_min),
                                                 ("step_max", step_max)) if v is not None}
    out: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = client.request("GET", f"{BASE}/projects/{_q(project)}/runs/{_q(run_id)}/media",
                              params={**params, "offset": offset, "limit": 1000})
        out += page["media"]
        offset = page["next_offset"]
    return out
