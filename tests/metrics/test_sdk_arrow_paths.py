"""The SDK's Arrow paths stay off pandas: pyarrow's ``pa.array``/``pa.table``/``to_numpy`` import it
on first use (~0.5 s), which was most of a short run's end and of a fresh process's first read.
Run in a fresh interpreter, since another test may have imported pandas already."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import json, math, sys
import pyarrow as pa
from cairn.sdk.metrics import MetricHistory, _encode

batch = [("loss", 1.0 / (i + 1), i, 1_700_000_000.0 + i) for i in range(2000)]
batch += [("é" * 3, math.nan, 2**40, 2.0), ("k" * 250, math.inf, -1, 0.0)]
table = pa.ipc.open_stream(_encode(batch)).read_all()
rows = [list(r) for r in zip(*(table.column(n).to_pylist() for n in ("key", "value", "step", "timestamp")))]
history = MetricHistory.from_table("r", "loss", table.slice(1, 1999).select(["step", "value", "timestamp"]))
print(json.dumps({"pandas": "pandas" in sys.modules, "same": rows[:2000] == [list(b) for b in batch[:2000]],
                  "tail": [rows[-2][0], str(rows[-2][1]), rows[-2][2], rows[-1][0], rows[-1][1], rows[-1][2]],
                  "steps": history.steps[:3].tolist(), "n": len(history.values),
                  "dtypes": [str(history.steps.dtype), str(history.values.dtype)]}))
"""


def test_encoding_a_batch_and_reading_a_history_import_no_pandas() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["pandas"] is False
    assert out["same"] is True
    assert out["tail"] == ["ééé", "nan", 2**40, "k" * 250, float("inf"), -1]
    assert out["steps"] == [1, 2, 3] and out["n"] == 1999 and out["dtypes"] == ["int64", "float64"]
