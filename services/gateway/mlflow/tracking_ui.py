"""Routes MLflow's own web UI calls: ``experiments/search-datasets`` (the datasets the runs of some
experiments used) and ``runs/create-promptlab-run`` (a finished run recording one prompt-engineering
trial). Both are built from the ordinary pieces: a registry run search, run creation, params, tags,
one artifact file; nothing here reads a store directly.
"""

from __future__ import annotations

import json
from typing import Any

from cairn.services.gateway.mlflow.artifacts import run_artifacts_path
from cairn.services.gateway.mlflow.calls import Call, endpoint, key_values
from cairn.services.gateway.mlflow.errors import invalid
from cairn.services.gateway.mlflow.experiments import (
    default_experiment_id,
    experiment_id_of,
    public_experiment_id,
)
from cairn.services.gateway.mlflow.runs import DATASET_TAG, create, run_json, run_path, set_tags
from cairn.services.gateway.mlflow.validation import array

MAX_DATASET_EXPERIMENTS = 20  # MLflow's bound on search-datasets
MAX_DATASET_RUNS = 50_000  # runs read per request, in the registry's pages
DATASET_CONTEXT_TAG = "mlflow.data.context"


@endpoint("POST", "experiments/search-datasets")
async def search_datasets(call: Call) -> dict[str, Any]:
    """Distinct (experiment, dataset name, digest, context) over the runs of the experiments."""
    wanted = array(call, "experiment_ids")
    if not wanted:
        raise invalid("SearchDatasets request must specify at least one experiment_id.")
    if len(wanted) > MAX_DATASET_EXPERIMENTS:
        raise invalid(f"SearchDatasets request cannot specify more than {MAX_DATASET_EXPERIMENTS} experiment_ids. "
                      f"Received {len(wanted)} experiment_ids.")
    ids = [await experiment_id_of(call, e, "experiment_ids") for e in wanted]
    await default_experiment_id(call)
    seen: dict[tuple[str, str, str, str | None], None] = {}
    token, read = None, 0
    while read < MAX_DATASET_RUNS:
        found = await call.registry("POST", "/runs/search", body={
            "experiment_ids": ids, "include_archived": False, "page_size": 1000, "page_token": token})
        for run in found["runs"]:
            for key, value in sorted(run["tags"].items()):
                if not key.startswith(DATASET_TAG):
                    continue
                record = json.loads(value)
                context = next((t.get("value") for t in record.get("tags", [])
                                if isinstance(t, dict) and t.get("key") == DATASET_CONTEXT_TAG), None)
                dataset = record.get("dataset", {})
                seen[(public_experiment_id(call, run["experiment_id"]), str(dataset.get("name", "")),
                      str(dataset.get("digest", "")), context)] = None
        read += len(found["runs"])
        token = found.get("next_page_token")
        if not token:
            break
    summaries = [{"experiment_id": e, "name": n, "digest": d, **({"context": c} if c is not None else {})}
                 for e, n, d, c in seen]
    return {"dataset_summaries": summaries}


_PROMPTLAB_REQUIRED = ("experiment_id", "prompt_template", "prompt_parameters", "model_route", "model_input",
                       "mlflow_version")


def _eval_table(prompt: dict[str, str], model_input: str, output_params: dict[str, str], output: str) -> bytes:
    """MLflow's ``eval_results_table.json``: one row of the prompt's parameters, prompt and output."""
    columns = [*prompt, "prompt", "output", *output_params]
    row = [*prompt.values(), model_input, output, *output_params.values()]
    return json.dumps({"columns": columns, "data": [row]}).encode()


@endpoint("POST", "runs/create-promptlab-run", role="editor")
async def create_promptlab_run(call: Call) -> dict[str, Any]:
    """A FINISHED run with the model's route and parameters as params, MLflow's prompt-engineering
    tags, and the trial's ``eval_results_table.json`` as an artifact (not the prompt-lab model
    folder MLflow also writes: serving it needs MLflow's AI gateway, which Cairn does not run)."""
    for name in _PROMPTLAB_REQUIRED:
        if call.args.get(name) in (None, "", []):
            raise invalid(f"CreatePromptlabRun request must specify {name}.")
    prompt = key_values(array(call, "prompt_parameters"), "prompt parameter")
    model_params = key_values(array(call, "model_parameters"), "model parameter")
    output_params = key_values(array(call, "model_output_parameters"), "model output parameter")
    made = await create(call)  # experiment_id, run_name, tags, user_id, start_time as runs/create reads them
    run_id = made["run"]["info"]["run_id"]
    params = {**model_params, "model_route": str(call.args["model_route"]),
              "prompt_template": str(call.args["prompt_template"])}
    await call.registry("POST", run_path(run_id, "/params"), body={"params": params})
    await set_tags(call, run_id, {
        "mlflow.loggedArtifacts": json.dumps([{"path": "eval_results_table.json", "type": "table"}]),
        "mlflow.runSourceType": "PROMPT_ENGINEERING"})
    table = _eval_table(prompt, str(call.args["model_input"]), output_params, str(call.args.get("model_output", "")))
    await call.artifacts("PUT", run_artifacts_path(call, run_id, "/files/eval_results_table.json"), data=table,
                         headers={"Content-Length": str(len(table))})
    run = await call.registry("POST", run_path(run_id, "/finish"), body={"status": "finished"})
    return {"run": run_json(call, run, [])}
