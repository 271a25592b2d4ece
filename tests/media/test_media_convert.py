"""What the SDK's media calls turn their inputs into, before anything is sent: images from numpy
(every accepted shape and dtype) as lossless PNG with a bounded thumbnail, tables as Parquet,
and the refusals that say what to pass instead. No server."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from cairn.sdk.media import _check, figure_bytes, png_bytes, table_bytes, thumbnail_png, to_pil


def _decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_float_images_are_scaled_and_clipped_and_uint8_is_kept_exactly() -> None:
    floats = np.array([[-0.5, 0.0], [0.5, 2.0]])
    assert _decoded(png_bytes(to_pil(floats))).tolist() == [[0, 0], [128, 255]]
    rgba = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert _decoded(png_bytes(to_pil(rgba))).tolist() == rgba.tolist()
    single = np.full((2, 2, 1), 7, dtype=np.uint8)
    assert _decoded(png_bytes(to_pil(single))).tolist() == [[7, 7], [7, 7]]
    assert _decoded(png_bytes(to_pil(np.array([[True, False]])))).tolist() == [[255, 0]]


def test_bad_arrays_are_refused_saying_what_fits() -> None:
    with pytest.raises(ValueError, match="HxW, HxWx3 or HxWx4"):
        to_pil(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="0..255"):
        to_pil(np.array([[300]], dtype=np.int32))


def test_thumbnails_keep_the_aspect_and_never_grow() -> None:
    big = Image.new("RGB", (1000, 250))
    assert Image.open(io.BytesIO(thumbnail_png(big))).size == (256, 64)
    small = Image.new("RGB", (10, 20))
    assert Image.open(io.BytesIO(thumbnail_png(small))).size == (10, 20)


def test_tables_become_parquet_from_arrow_batches_and_dicts() -> None:
    batch = pa.RecordBatch.from_pydict({"a": [1, 2]})
    assert pq.read_table(io.BytesIO(table_bytes(batch))).column("a").to_pylist() == [1, 2]
    assert pq.read_table(io.BytesIO(table_bytes({"b": ["x"]}))).column("b").to_pylist() == ["x"]
    with pytest.raises(TypeError, match="DataFrame or a pyarrow Table"):
        table_bytes([1, 2, 3])


def test_what_is_not_a_figure_or_a_key_is_refused() -> None:
    with pytest.raises(TypeError, match="matplotlib or plotly"):
        figure_bytes(object())
    with pytest.raises(ValueError, match="media key"):
        _check("a\\b", None)
    with pytest.raises(ValueError, match="step"):
        _check("ok", -1)
