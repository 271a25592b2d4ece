"""The MLflow client workload of bench_mlflow_api.py: plain MLflow code, run with the side venv's
python against whatever MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_TOKEN) point at. Prints one JSON
object of timings. Not a test and not imported by Cairn: it needs only ``mlflow``."""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

from mlflow import MlflowClient
from mlflow.entities import Metric, Param


def timed(fn):  # noqa: ANN001, ANN201 - a tiny helper for a script
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def search_parts(query: dict) -> dict[str, float]:
    """search_runs split in two: the server's answer alone (the same request over plain HTTP, best
    of 3) and the client's own parse of it (json -> protobuf -> Run entities, as RestStore does)."""
    import requests
    from mlflow.entities import Run
    from mlflow.protos.service_pb2 import SearchRuns
    from mlflow.utils.proto_json_utils import parse_dict

    body = {"experiment_ids": query["experiment_ids"], "filter": query["filter_string"],
            "run_view_type": "ACTIVE_ONLY", "max_results": query["max_results"], "order_by": query["order_by"]}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    url = f"{os.environ['MLFLOW_TRACKING_URI'].rstrip('/')}/api/2.0/mlflow/runs/search"
    with requests.Session() as http:
        http.headers.update({"Authorization": f"Bearer {token}"} if token else {})
        http.post(url, json=body, timeout=60)  # warm the connection
        answers = [timed(lambda: http.post(url, json=body, timeout=60)) for _ in range(3)]
    text = answers[-1][1].text

    def parse() -> list:
        message = SearchRuns.Response()
        parse_dict(json.loads(text), message)
        return [Run.from_proto(r) for r in message.runs]

    return {"search_http_s": min(s for s, _ in answers), "search_parse_s": min(timed(parse)[0] for _ in range(3)),
            "search_response_bytes": len(text)}


UPLOAD_ROUNDS = 3


def new_files(folder: str, count: int = 20, mib: int = 1) -> list[str]:
    """``count`` files of ``mib`` MiB of fresh random bytes in ``folder`` (made if missing)."""
    os.makedirs(folder, exist_ok=True)
    files = []
    for i in range(count):
        path = os.path.join(folder, f"artifact_{i}.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(mib << 20))
        files.append(path)
    return files


def main() -> None:
    params_n, metrics_n, steps = 100, 10, int(os.environ.get("BENCH_STEPS", "10000"))
    artifacts_n, artifact_mb = 20, 1
    search_runs = int(os.environ.get("BENCH_SEARCH_RUNS", "1000"))
    client = MlflowClient()
    warm = client.create_experiment(f"bench-warmup-{os.getpid()}-{time.time_ns()}")
    for _ in range(5):  # first requests (server workers starting, caches filling) are not measured
        r = client.create_run(warm)
        client.log_batch(r.info.run_id, params=[Param("p", "1")], metrics=[Metric("m", 1.0, 0, 0)])
        client.set_terminated(r.info.run_id)
        client.search_runs([warm], filter_string="metrics.m > 0")
    experiment_id = client.create_experiment(f"bench-{os.getpid()}-{time.time_ns()}")
    result: dict[str, float] = {}

    seconds, run = timed(lambda: client.create_run(experiment_id))
    run_id = run.info.run_id
    result["create_run_s"] = seconds
    params = [Param(f"param_{i}", str(i * 0.5)) for i in range(params_n)]
    result["log_100_params_s"], _ = timed(lambda: client.log_batch(run_id, params=params))

    now = int(time.time() * 1000)
    points = [Metric(f"metric_{k}", float(s) * 0.001 + k, now + s, s) for s in range(steps) for k in range(metrics_n)]

    def log_metrics() -> None:
        for i in range(0, len(points), 1000):  # MLflow's limit: 1,000 metrics per log_batch
            client.log_batch(run_id, metrics=points[i:i + 1000])

    seconds, _ = timed(log_metrics)
    result["log_metrics_s"] = seconds
    result["metric_points_per_s"] = len(points) / seconds
    seconds, history = timed(lambda: client.get_metric_history(run_id, "metric_3"))
    assert len(history) == steps, len(history)
    result["metric_history_s"] = seconds

    with tempfile.TemporaryDirectory() as folder:
        rounds = []  # three rounds of 20 new files each; the median round is reported
        for r in range(UPLOAD_ROUNDS):
            files = new_files(os.path.join(folder, f"round_{r}"), artifacts_n, artifact_mb)
            into = "files" if r == 0 else f"files-{r}"
            rounds.append(timed(lambda files=files, into=into: [client.log_artifact(run_id, p, into) for p in files])[0])
        seconds = statistics.median(rounds)
        result["upload_artifacts_s"] = seconds
        result["upload_mb_per_s"] = artifacts_n * artifact_mb * 1.048576 / seconds
        result["upload_rounds_s"] = rounds
        out = os.path.join(folder, "down")
        os.makedirs(out)
        seconds, _ = timed(lambda: client.download_artifacts(run_id, "files", out))
        result["download_artifacts_s"] = seconds
        result["download_mb_per_s"] = artifacts_n * artifact_mb * 1.048576 / seconds
    client.set_terminated(run_id)

    search_experiment = client.create_experiment(f"bench-search-{os.getpid()}-{time.time_ns()}")

    def make_runs() -> None:
        for i in range(search_runs):
            r = client.create_run(search_experiment)
            stamp = int(time.time() * 1000)
            client.log_batch(r.info.run_id, params=[Param(f"p{j}", str((i + j) % 7)) for j in range(5)],
                             metrics=[Metric(f"m{j}", ((i * 37 + j) % 1000) / 1000, stamp, 0) for j in range(5)])
            client.set_terminated(r.info.run_id)

    seconds, _ = timed(make_runs)
    result["create_runs_per_s"] = search_runs / seconds
    query = dict(experiment_ids=[search_experiment], filter_string="metrics.m0 > 0.5 and params.p1 != '3'",
                 order_by=["metrics.m1 DESC"], max_results=1000)
    client.search_runs(**query)  # warm
    best = min(timed(lambda: client.search_runs(**query))[0] for _ in range(3))
    found = client.search_runs(**query)
    result["search_runs_s"] = best
    result["search_found"] = len(found)
    result.update(search_parts(query))
    print(json.dumps(result))
    sys.stdout.flush()


def alternating_uploads() -> None:
    """The upload step against both servers in one window of time: rounds of 20 new 1 MiB files
    go to MLflow and to Cairn in turn (who goes first alternates), so a slow or a fast period of a
    shared VM falls on both. URIs from BENCH_MLFLOW_URI / BENCH_CAIRN_URI, Cairn's token from
    BENCH_CAIRN_TOKEN; prints {"mlflow": [round seconds...], "cairn": [...]}."""
    targets = {"mlflow": (os.environ["BENCH_MLFLOW_URI"], None),
               "cairn": (os.environ["BENCH_CAIRN_URI"], os.environ["BENCH_CAIRN_TOKEN"])}
    rounds = int(os.environ.get("BENCH_ALTERNATE_ROUNDS", "10"))

    def as_target(name: str) -> None:  # the client reads the token from the environment per request
        token = targets[name][1]
        if token:
            os.environ["MLFLOW_TRACKING_TOKEN"] = token
        else:
            os.environ.pop("MLFLOW_TRACKING_TOKEN", None)

    runs = {}
    for name, (uri, _) in targets.items():
        as_target(name)
        client = MlflowClient(tracking_uri=uri)
        experiment = client.create_experiment(f"bench-alternate-{os.getpid()}-{time.time_ns()}")
        run_id = client.create_run(experiment).info.run_id
        with tempfile.NamedTemporaryFile(suffix=".bin") as f:  # first upload (connection, caches): not timed
            f.write(os.urandom(1 << 20))
            f.flush()
            client.log_artifact(run_id, f.name, "warm")
        runs[name] = (client, run_id)
    seconds: dict[str, list[float]] = {name: [] for name in targets}
    with tempfile.TemporaryDirectory() as folder:
        for r in range(rounds):
            order = ["mlflow", "cairn"] if r % 2 == 0 else ["cairn", "mlflow"]
            for name in order:
                files = new_files(os.path.join(folder, f"{name}-{r}"))
                client, run_id = runs[name]
                as_target(name)
                seconds[name].append(timed(lambda c=client, i=run_id, fs=files, into=f"round-{r}":
                                           [c.log_artifact(i, p, into) for p in fs])[0])
    print(json.dumps(seconds))
    sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["alternate"]:
        alternating_uploads()
    else:
        main()
