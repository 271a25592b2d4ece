"""The media index's pure decisions: which keys, steps and kinds are refused (and why), the
key's next step, immutability, and which of an MLflow client's run files are media."""

from __future__ import annotations

import pytest

from cairn.kernel.errors import Conflict, InvalidInput
from cairn.protocol import media_key_problem
from cairn.services.artifacts.media_domain import (
    evolve_media_set,
    log_media,
    log_thumbnail,
    may_be_media,
    mlflow_media,
    png_size,
)

D1, D2 = "a" * 64, "b" * 64


def _log(state: dict | None, **kw: object) -> tuple[str, dict]:
    args = {"key": "samples", "step": None, "kind": "image", "digest": D1, "thumbnail_digest": None,
            "media_type": "image/png", "size": 3, "width": None, "height": None, **kw}
    decision = log_media(state, **args)  # type: ignore[arg-type]
    assert decision is not None
    return decision


def _fold(*events: tuple[str, dict]) -> dict | None:
    state = None
    for event_type, data in events:
        state = evolve_media_set(state, event_type, data)
    return state


@pytest.mark.parametrize("key, problem", [("", "empty"), ("a" * 201, "longer"), ("a<b", "'<'"),
                                          ("a//b", "empty"), ("../x", "'..'"), ("/x", "empty")])
def test_bad_keys_are_refused_with_what_to_fix(key: str, problem: str) -> None:
    assert problem in (media_key_problem(key) or "")
    with pytest.raises(InvalidInput, match="media key"):
        _log(None, key=key)


def test_good_keys_pass() -> None:
    assert media_key_problem("val/recon sample_1.x-y") is None


@pytest.mark.parametrize("kw, field", [({"step": -1}, "step"), ({"kind": "video"}, "kind"),
                                       ({"media_type": "png"}, "media_type")])
def test_bad_step_kind_or_media_type_is_refused(kw: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        _log(None, **kw)
    assert err.value.details == {"field": field}


def test_a_step_left_out_is_the_keys_next_and_a_logged_step_is_immutable() -> None:
    first = _log(None)
    assert first[1]["step"] == 0 and first[1]["entry"] == "samples@0"
    state = _fold(first, _log(_fold(first), step=7, digest=D2))
    assert _log(state)[1]["step"] == 8
    assert log_media(state, key="samples", step=7, kind="image", digest=D2, thumbnail_digest=None,
                     media_type="image/png", size=3, width=None, height=None) is None  # same bytes: no-op
    with pytest.raises(Conflict, match="immutable"):
        _log(state, step=7, digest=D1)
    with pytest.raises(Conflict, match="holds image media"):
        _log(state, key="samples", kind="table", media_type="application/vnd.apache.parquet")


def test_a_thumbnail_is_recorded_once() -> None:
    event = log_thumbnail(None, entry="e", thumbnail_digest=D1, media_type="image/webp")
    assert event is not None
    assert log_thumbnail(_fold(event), entry="e", thumbnail_digest=D1, media_type="image/webp") is None


def test_mlflow_image_files_and_their_thumbnails_are_recognised() -> None:
    name = "images/val~recon+step+12+timestamp+1700000000000+0f6c3c1e-9a1b-4c7e-8f00-123456789abc"
    full = mlflow_media(f"{name}.png", b"")
    thumb = mlflow_media(f"{name}+compressed.webp", b"")
    assert full is not None and thumb is not None
    assert (full["key"], full["step"], full["kind"], full["thumbnail"]) == ("val/recon", 12, "image", False)
    assert thumb["entry"] == full["entry"] == name and thumb["thumbnail"] and thumb["media_type"] == "image/webp"
    old = mlflow_media("images/k%step%3%timestamp%1%abc.png", b"")  # older clients' separator
    assert old is not None and old["step"] == 3


def test_mlflow_figures_and_tables_are_recognised_other_files_are_not() -> None:
    assert mlflow_media("plots/loss.png", b"")["kind"] == "figure"  # type: ignore[index]
    assert mlflow_media("plotly.html", b"")["kind"] == "html"  # type: ignore[index]
    table = mlflow_media("eval.json", b'{"columns": ["a"], "data": [[1]]}')
    assert table is not None and table["kind"] == "table" and table["key"] == "eval"
    assert mlflow_media("config.json", b'{"lr": 0.1}') is None
    assert mlflow_media("model/model.pkl", b"") is None
    assert mlflow_media("table_images/eval/1234.png", b"") is None  # part of a table
    # only these names are read at all (most run files are not media)
    assert [n for n in ("a.PNG", "t.json", "x.webp", "m.pkl", "MLmodel", "w.bin") if may_be_media(n)] == \
        ["a.PNG", "t.json", "x.webp"]


def test_png_size_reads_the_header() -> None:
    head = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + (640).to_bytes(4, "big") + (480).to_bytes(4, "big")
    assert png_size(head) == (640, 480)
    assert png_size(b"GIF89a" + b"\x00" * 30) is None
