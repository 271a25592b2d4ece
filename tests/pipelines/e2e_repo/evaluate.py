"""Evaluate: load the trained model from its digest and log its `auc` (what the gate reads)."""

import json
import os

import cairn

inputs = json.loads(os.environ["CAIRN_PIPELINE_INPUTS"])
with cairn.start_run() as run:
    model = json.loads(run.client.artifacts.download_blob(inputs["model"]["digest"], "model.json").read_text())
    assert model["rows"] > 0, "the model was trained on no data"
    run.log_metric("auc", model["quality"])
    run.flush()
