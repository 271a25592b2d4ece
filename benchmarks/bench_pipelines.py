"""Pipelines: how long a generated pipeline of many steps takes to validate (issue 21's benchmark:
a 1,000-step DAG validated and fully scheduled in < 10 s; this script times the validation part:
YAML, schema, the DAG's order and levels, and every input and condition checked against ancestors).

The DAG is made here with seeded randomness: step i needs 1-3 of the 20 steps before it (so the
DAG is deep and wide at once), takes an artifact of one of them as input, has a ``when:`` on a
metric of another every third step, and every 50th step is a gate on its first need's metrics.

Usage: python benchmarks/bench_pipelines.py --validate [--steps 1000] [--repeat 5] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time


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
        if needs and i % 3 == 0:
            lines.append(f"    when: steps.s{needs[-1]}.metrics.score > 0.1 or not params.threshold < 1")
        lines += ["    outputs: [out]", "    resources: {cpus: 1, memory: 512Mi}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--validate", action="store_true", help="Time load_pipeline on a generated DAG.")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if not args.validate:
        parser.error("choose a measurement: --validate")
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
    print("target: < 10 s for validation and scheduling together (issue 21)")


if __name__ == "__main__":
    main()
