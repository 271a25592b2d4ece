"""Logging overhead per training step of the framework integrations (issue 28, "Benchmark"):
the same training loop without logging, with Cairn's callback, and with MLflow's autolog for the
same framework, in one process per framework, taking turns round by round so machine load hits
every mode alike; printed as time per step (the median over rounds) and added time per step
against the plain loop (the median over rounds of each round's ratio to its own plain loop).

- Lightning: an MLP sized so a step takes ~10 ms on a 2-core VM (about 100 steps/s, the issue's
  target: under 2% added per step); ``self.log`` every step, ``log_every_n_steps=1``; MLflow with
  ``mlflow.pytorch.autolog(log_every_n_step=1)``. A fourth mode, ``null``, attaches a ``Logger``
  that does nothing: what Lightning itself spends on each step once any logger is attached (its
  logger connector gathers and converts the logged values), apart from what Cairn's logger adds.
- Keras 3 (torch backend): a dense net, per-batch logs; MLflow ``mlflow.keras.autolog(log_every_n_steps=1)``.
- XGBoost and LightGBM: boosting rounds with a training-set evaluation each round; MLflow's
  ``mlflow.xgboost.autolog`` / ``mlflow.lightgbm.autolog``.

Model logging is off on both sides (it happens once, after the loop; the figure is per step), and
so are system metrics. Cairn logs to a platform this script starts (real services, loopback);
MLflow to a local SQLite store with the mlflow in this venv (no server: the cheapest MLflow path).
The main figure is the steady state: time per step between step starts after the first tenth
of the steps (what logging adds to a step); the second line is the whole training call per step
(which also carries the once-per-fit work: params at the start, flushes at the end). Each side's
end-of-run flush, after the training call, is not timed.

Usage: python benchmarks/bench_integrations.py [--rounds 3] [--steps N] [--frameworks lightning,keras,xgboost,lightgbm]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
Timing = tuple[float, float]  # (seconds per step in the steady state, seconds per step over the whole fit)


def timing(stamps: list[float], start: float, end: float) -> Timing:
    """Per step between the starts of steps after the first tenth (the steady state: the
    once-per-fit costs, params at the start and flushes at the end, are outside it), and over
    the whole training call."""
    skip = max(1, len(stamps) // 10)
    steady = (stamps[-1] - stamps[skip]) / (len(stamps) - 1 - skip)
    return steady, (end - start) / len(stamps)


def _lightning(steps: int) -> dict[str, Callable[[Any], Timing]]:
    import lightning.pytorch as pl
    import mlflow.pytorch
    import torch

    from cairn.integrations.lightning import CairnLogger

    width = int(os.environ.get("BENCH_LIGHTNING_WIDTH", "1280"))  # ~10 ms a step on the 2-core VM
    stamps: list[float] = []
    x = torch.randn(steps * 64, 256)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x[:, :1]), batch_size=64)

    class Net(pl.LightningModule):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(256, width), torch.nn.ReLU(), torch.nn.Linear(width, width),
                                           torch.nn.ReLU(), torch.nn.Linear(width, 1))

        def training_step(self, batch: Any, _: int) -> Any:
            stamps.append(time.perf_counter())
            loss = torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=1e-3)

    def fit(logger: Any) -> Timing:
        trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=logger, log_every_n_steps=1,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        stamps.clear()
        start = time.perf_counter()
        trainer.fit(Net(), data)
        return timing(stamps, start, time.perf_counter())

    class NullLogger(pl.loggers.Logger):  # type: ignore[misc]
        name, version = "null", "0"

        def log_hyperparams(self, *_: Any, **__: Any) -> None:
            pass

        def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
            pass

    def mlflow_fit(_: Any) -> Timing:
        mlflow.pytorch.autolog(log_models=False, log_every_n_step=1, silent=True)
        try:
            return fit(False)
        finally:
            mlflow.pytorch.autolog(disable=True)
    return {"plain": lambda _: fit(False), "cairn": lambda run: fit(CairnLogger(run, log_models=False)),
            "mlflow": mlflow_fit, "null": lambda _: fit(NullLogger())}


def _keras(steps: int) -> dict[str, Callable[[Any], Timing]]:
    import keras
    import mlflow.keras
    import numpy as np

    from cairn.integrations.keras import CairnCallback

    x = np.random.default_rng(0).normal(size=(steps * 32, 64)).astype(np.float32)
    y = x[:, :1].copy()
    stamps: list[float] = []
    stamp = keras.callbacks.LambdaCallback(on_train_batch_begin=lambda *_, **__: stamps.append(time.perf_counter()))

    def fit(callbacks: list[Any]) -> Timing:
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        stamps.clear()
        start = time.perf_counter()
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[stamp, *callbacks])
        return timing(stamps, start, time.perf_counter())

    def mlflow_fit(_: Any) -> Timing:
        mlflow.keras.autolog(log_models=False, log_every_n_steps=1, silent=True)
        try:
            return fit([])
        finally:
            mlflow.keras.autolog(disable=True)
    return {"plain": lambda _: fit([]), "cairn": lambda run: fit([CairnCallback(run, log_models=False)]),
            "mlflow": mlflow_fit}


def _boosting(name: str, steps: int) -> dict[str, Callable[[Any], Timing]]:
    import numpy as np

    stamps: list[float] = []

    rng = np.random.default_rng(1)
    x = rng.normal(size=(20_000, 20)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int)
    if name == "xgboost":
        import mlflow.xgboost as flavour
        import xgboost as xgb

        from cairn.integrations.xgboost import CairnCallback as XgbCallback

        data = xgb.DMatrix(x, label=y)
        params = {"objective": "binary:logistic", "max_depth": 4, "nthread": 1}

        class Stamp(xgb.callback.TrainingCallback):  # type: ignore[misc]
            def before_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                stamps.append(time.perf_counter())
                return False

        def fit(callbacks: list[Any]) -> Timing:
            stamps.clear()
            start = time.perf_counter()
            xgb.train(params, data, steps, evals=[(data, "train")], verbose_eval=False,
                      callbacks=[Stamp(), *callbacks])
            return timing(stamps, start, time.perf_counter())
        cairn_callback: Callable[[Any], Any] = lambda run: XgbCallback(run, params=params, log_models=False)  # noqa: E731
    else:
        import lightgbm as lgb
        import mlflow.lightgbm as flavour  # type: ignore[no-redef]

        from cairn.integrations.lightgbm import CairnCallback as LgbCallback

        ldata = lgb.Dataset(x, y, free_raw_data=False)
        lparams = {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1}

        def stamp(env: Any) -> None:
            stamps.append(time.perf_counter())
        stamp.before_iteration = True  # type: ignore[attr-defined]

        def fit(callbacks: list[Any]) -> Timing:
            stamps.clear()
            start = time.perf_counter()
            lgb.train(lparams, ldata, steps, valid_sets=[ldata], valid_names=["train"], callbacks=[stamp, *callbacks])
            return timing(stamps, start, time.perf_counter())
        cairn_callback = lambda run: LgbCallback(run, log_models=False)  # noqa: E731

    def mlflow_fit(_: Any) -> Timing:
        flavour.autolog(log_models=False, silent=True)
        try:
            return fit([])
        finally:
            flavour.autolog(disable=True)
    return {"plain": lambda _: fit([]), "cairn": lambda run: fit([cairn_callback(run)]), "mlflow": mlflow_fit}


def worker(framework: str, url: str, token: str, rounds: int, steps: int) -> dict[str, Any]:
    """One framework: warm each mode once, then ``rounds`` rounds of all three, rotated."""
    import mlflow

    from cairn.sdk.client import Client
    from cairn.sdk.run import start_run

    loops = {"lightning": _lightning, "keras": _keras}.get(framework)
    modes = loops(steps) if loops else _boosting(framework, steps)
    store = tempfile.mkdtemp(prefix="bench-mlflow-")
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    mlflow.create_experiment(f"bench-{framework}", artifact_location=f"{store}/artifacts")  # not ./mlruns
    mlflow.set_experiment(f"bench-{framework}")
    client = Client(url, token)
    order = list(modes)
    times: dict[str, list[Timing]] = {mode: [] for mode in order}

    def once(mode: str) -> Timing:
        if mode == "mlflow":
            with mlflow.start_run():
                return modes[mode](None)
        with start_run("bench-integrations", framework, client=client, system_metrics=False,
                       record_environment=False) as run:
            return modes[mode](run)
    for mode in order:
        once(mode)  # warm-up: imports, first-call compilation, MLflow's store migrations
    for i in range(rounds):
        shift = i % len(order)
        for mode in order[shift:] + order[:shift]:
            times[mode].append(once(mode))
    return {"framework": framework, "steps": steps, "times": times}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frameworks", default="lightning,keras,xgboost,lightgbm")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=0, help="steps (rounds) per fit for every framework "
                        "(default: 300 for Lightning and Keras, 100 for the boosters)")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.url, args.token, args.rounds, args.steps)))
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from platform_harness import Platform, running

    steps = {"lightning": 300, "keras": 300, "xgboost": 100, "lightgbm": 100}
    if args.steps:
        steps = dict.fromkeys(steps, args.steps)
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "torch"), "PYTHONWARNINGS": "ignore"}
    print(f"load average before: {os.getloadavg()[0]:.2f}; rounds: {args.rounds}")
    print(f"{'framework':<10} {'steps':>5} {'plain ms/step':>14} {'cairn ms/step':>14} {'mlflow ms/step':>15} "
          f"{'cairn added':>12} {'mlflow added':>13}   (steady state; whole fit below)")
    with tempfile.TemporaryDirectory(prefix="bench-integrations-") as tmp, running(Platform(Path(tmp))) as plat:
        for framework in args.frameworks.split(","):
            done = subprocess.run([sys.executable, __file__, "--worker", framework, "--url", plat.gateway,
                                   "--token", plat.token, "--rounds", str(args.rounds),
                                   "--steps", str(steps[framework])],
                                  capture_output=True, text=True, env=env, timeout=1800)
            if done.returncode != 0:
                print(f"{framework}: failed\n{done.stderr[-3000:]}")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            for which, label in ((0, framework), (1, "  whole fit")):
                med = {mode: statistics.median(t[which] for t in runs) * 1000 for mode, runs in result["times"].items()}
                # added time: the median of each round's own ratio to that round's plain loop (the
                # modes of a round run back to back, so load that drifts between rounds cancels out)
                plain = [t[which] for t in result["times"]["plain"]]
                added = {mode: (statistics.median(t[which] / p for t, p in zip(runs, plain)) - 1) * 100
                         for mode, runs in result["times"].items()}
                print(f"{label:<10} {result['steps']:>5} {med['plain']:>14.3f} {med['cairn']:>14.3f} "
                      f"{med['mlflow']:>15.3f} {added['cairn']:>+11.1f}% {added['mlflow']:>+12.1f}%", flush=True)
                if "null" in med:  # Lightning's own share: what any logger costs a step
                    over_null = statistics.median(c[which] / n[which] for c, n in
                                                  zip(result["times"]["cairn"], result["times"]["null"]))
                    print(f"{'':<10} {'':>5} null logger {med['null']:.3f} ms/step ({added['null']:+.1f}%); "
                          f"Cairn's logger over the null one: {(over_null - 1) * 100:+.1f}%")
            print("  steady, per round (ms/step): " + "; ".join(
                f"{mode} " + ", ".join(f"{t[0] * 1000:.2f}" for t in runs) for mode, runs in result["times"].items()))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
