"""Pipelines: how long a generated pipeline of many steps takes to validate (issue 21's benchmark:
a 1,000-step DAG validated and fully scheduled in < 10 s; this script times the validation part:
YAML, schema, the DAG's order and levels, and every input and condition checked against ancestors).

The DAG is made here with seeded randomness: step i needs 1-3 of the 20 steps before it (so the
DAG is deep and wide at once), takes an artifact of one of them as input, has a ``when:`` on a
metric of a job it needs every third step, and every 50th step is a gate on its first need's metrics.

``--schedule`` times validation plus scheduling: the engine's pure core (``next_actions`` and
``evolve`` of services/pipelines/domain.py) plays a whole run of the generated DAG, every job step
reported succeeded the moment it starts (with its output digest and a ``score`` metric) and every
gate decided, until ``pipeline_run.finished``: the decisions the service makes, without the I/O.

Usage: python benchmarks/bench_pipelines.py --validate|--schedule [--steps 1000] [--repeat 5] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cairn.pipelines.spec import Pipeline


def generated_pipeline(steps: int, seed: int = 7) -> str:
    """The YAML text of a valid pipeline with ``steps`` steps (see the module docstring)."""
    rng = random.Random(seed)
    lines = ["name: generated", "concurrency: queue", "params:", "  threshold: 0.5", "steps:"]
    for i in range(steps):
        lines.append(f"  - id: s{i}")
        needs = sorted(rng.sample(range(max(0, i - 20), i), min(i, rng.randint(1, 3)))) if i else []
        if needs:
            lines.append(f"    needs: [{', '.join(f's{n}' for n in needs)}]")
        if i % 50 == 49 and needs:
            lines += ["    gate:", f"      step: s{needs[0]}", "      conditions:",
                      f"        - steps.s{needs[0]}.metrics.score >= params.threshold"]
            continue
        lines.append(f"    command: python step.py --index {i}")
        jobs = [n for n in needs if n % 50 != 49]
        if jobs:
            lines += ["    inputs:", f"      data: artifact:s{rng.choice(jobs)}/out"]
        if jobs and i % 3 == 0:  # on a job's metric: a gate reports none
            lines.append(f"    when: steps.s{jobs[-1]}.metrics.score > 0.1 or not params.threshold < 1")
        lines += ["    outputs: [out]", "    resources: {cpus: 1, memory: 512Mi}"]
    return "\n".join(lines) + "\n"


def play_run(pipeline: "Pipeline") -> tuple[int, int]:
    """Play one run of ``pipeline`` to its end with the pure engine; returns (events, passes)."""
    from cairn.kernel.envelope import Event
    from cairn.services.pipelines import domain
    from cairn.services.pipelines.gates import decide_gate

    state: dict[str, Any] | None = None
    seq = 0

    def append(decision: tuple[str, dict[str, Any]]) -> None:
        nonlocal state, seq
        seq += 1
        event = Event(type=decision[0], project="bench", aggregate="pipeline_run", aggregate_id="run",
                      data=decision[1], actor="engine", time="2026-01-01T00:00:00Z", sequence=seq)
        state = domain.evolve(state, event)

    append(domain.start_run(None, pipeline=pipeline, params={}, trigger={"kind": "manual", "actor": "bench"},
                            inputs={}, code_digest="c" * 64))
    passes = 0
    while True:
        passes += 1
        actions = domain.next_actions(state, pipeline)
        if not actions:
            raise RuntimeError("the run is waiting on nothing the benchmark plays")
        for action in actions:
            assert action.event is not None
            append(action.event)
            if action.kind == "finish":
                return seq, passes
            if action.kind != "start" or action.step is None:
                continue
            step = pipeline.step(action.step)
            attempt = action.event[1]["attempt"]
            if step.kind == "gate":
                gate = step.special
                run = state
                assert run is not None
                candidate = run["steps"][gate.step]["metrics"]  # type: ignore[union-attr]
                decision = decide_gate(gate, candidate, None, params=run["params"],  # type: ignore[arg-type]
                                       steps={sid: {"metrics": s["metrics"], "outputs": s["outputs"]}
                                              for sid, s in run["steps"].items()})
                append(domain.record_gate(state, step=step.id, decision=decision))
            else:
                append(domain.record_success(state, step=step.id, attempt=attempt,
                                             outputs={name: "0" * 64 for name in step.outputs},
                                             metrics={"score": 0.9}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--validate", action="store_true", help="Time load_pipeline on a generated DAG.")
    parser.add_argument("--schedule", action="store_true",
                        help="Time load_pipeline plus playing a whole run through the engine's pure core.")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if not (args.validate or args.schedule):
        parser.error("choose a measurement: --validate or --schedule")
    from cairn.pipelines import load_pipeline

    text = generated_pipeline(args.steps, args.seed)
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        pipeline = load_pipeline(text)
        times.append(time.perf_counter() - started)
    print(f"steps {len(pipeline.steps)}")
    print(f"levels {len(pipeline.levels)}")
    print(f"yaml_bytes {len(text)}")
    print(f"validate_s_median {statistics.median(times):.3f}")
    print(f"validate_s_min {min(times):.3f}")
    if args.schedule:
        played = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            events, passes = play_run(load_pipeline(text))
            played.append(time.perf_counter() - started)
        print(f"run_events {events}")
        print(f"engine_passes {passes}")
        print(f"validate_and_schedule_s_median {statistics.median(played):.3f}")
        print(f"validate_and_schedule_s_min {min(played):.3f}")
    print("target: < 10 s for validation and scheduling together (issue 21)")


if __name__ == "__main__":
    main()
