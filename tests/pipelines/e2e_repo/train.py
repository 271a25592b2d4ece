"""Train: read the prepared data (CAIRN_PIPELINE_INPUTS names its digest), write a "model" whose
quality is quality.txt's number, log it as the `model` output and its validation `auc`."""

import json
import os
import pathlib

import cairn

inputs = json.loads(os.environ["CAIRN_PIPELINE_INPUTS"])
quality = float(pathlib.Path("quality.txt").read_text())
with cairn.start_run() as run:
    data = run.client.artifacts.download_blob(inputs["data"]["digest"], "features.csv")
    rows = len(data.read_text().splitlines()) - 1
    pathlib.Path("model.json").write_text(json.dumps({"quality": quality, "rows": rows}))
    run.log_artifact("model.json", name="model")
    run.log_metric("auc", quality)
    run.flush()
