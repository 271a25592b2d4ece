"""Validation of pipeline files: every problem kind with its exact line (and column where it
matters), all problems at once, the DAG's order and levels, a generated 1,000-step DAG, and
``cairn pipelines validate``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.pipelines import PipelineError, load_pipeline

EXAMPLE = Path(__file__).parent / "examples" / "ml.yaml"
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pipelines.py"


def problems(text: str) -> list[tuple[int, str]]:
    """(line, message) of every problem in ``text``, which must be invalid."""
    with pytest.raises(PipelineError) as caught:
        load_pipeline(textwrap.dedent(text))
    return [(p.line, p.message) for p in caught.value.problems]


def only(text: str) -> tuple[int, str]:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def test_the_example_is_valid_with_a_deterministic_order_and_levels() -> None:
    pipeline = load_pipeline(EXAMPLE)
    assert pipeline.order == ("prepare", "train", "evaluate", "drift", "gate", "register", "approve",
                              "promote", "deploy")
    assert pipeline.levels[:3] == (("prepare",), ("train", "drift"), ("evaluate",))
    assert [s.kind for s in pipeline.steps][3:] == ["data_check", "gate", "register", "approval", "promote", "deploy"]


def test_ties_in_the_order_follow_the_file() -> None:
    pipeline = load_pipeline("name: p\nsteps:\n" + "".join(
        f"  - id: {s}\n    command: run\n" + (f"    needs: [{n}]\n" if n else "")
        for s, n in [("z", ""), ("y", "z"), ("b", ""), ("a", "b"), ("m", "z")]))
    assert pipeline.order == ("z", "y", "b", "a", "m")
    assert pipeline.levels == (("z", "b"), ("y", "a", "m"))


def test_yaml_syntax_errors_point_at_their_line() -> None:
    line, message = only("name: p\nsteps:\n  - id: a\n    command: [run\n  - id: b\n")
    assert message.startswith("YAML syntax") and line == 5


def test_an_empty_file_and_a_list_at_the_top_are_reported() -> None:
    assert only("") == (1, "the file is empty: a pipeline needs name and steps")
    line, message = only("- a\n- b\n")
    assert line == 1 and "must be a mapping" in message


def test_unknown_keys_with_near_misses() -> None:
    found = problems("""\
        name: p
        concurency: skip
        steps:
          - id: a
            command: run
            timout_s: 5
            resources: {cpu: 2}
        """)
    assert found == [(2, "the pipeline: unknown key 'concurency'; did you mean 'concurrency'?"),
                     (6, "step 'a': unknown key 'timout_s'; did you mean 'timeout_s'?"),
                     (7, "step 'a': resources: unknown key 'cpu'; did you mean 'cpus'?")]


def test_wrong_types_say_what_was_expected() -> None:
    found = problems("""\
        name: p
        steps:
          - id: a
            command: {run: 1}
            retries: two
            timeout_s: 0
            env: [A]
            resources: {memory: lots}
        """)
    assert [line for line, _ in found] == [4, 5, 6, 7, 8]
    assert "command must be text, not a mapping" in found[0][1]
    assert "retries must be a whole number, not the text 'two'" in found[1][1]
    assert "timeout_s must be > 0, not 0" in found[2][1]
    assert "env must be a mapping" in found[3][1]
    assert "memory 'lots' is not a size" in found[4][1]


def test_missing_required_fields() -> None:
    found = problems("""\
        steps:
          - command: run
          - id: b
        """)
    assert found == [(1, "the pipeline: missing required key 'name'"),
                     (2, "step 1: missing required key 'id'"),
                     (3, "step 'b': a step needs a command (a job) or one of gate, data_check, approval, register, "
                         "promote, deploy")]


def test_duplicate_step_ids_and_duplicate_keys() -> None:
    found = problems("""\
        name: p
        steps:
          - id: a
            command: run
          - id: a
            command: again
            command: twice
        """)
    assert found == [(5, "duplicate step id 'a' (first on line 3)"),
                     (7, "step 'a': duplicate key 'command' (first on line 6)")]


def test_needs_naming_an_unknown_step() -> None:
    assert only("""\
        name: p
        steps:
          - id: train
            command: run
          - id: evaluate
            needs: [trian]
            command: run
        """) == (6, "step 'evaluate' needs 'trian', which is no step in this pipeline; did you mean 'train'?")


def test_a_cycle_is_named_in_order_at_its_first_step() -> None:
    found = problems("""\
        name: p
        steps:
          - id: start
            command: run
          - id: a
            needs: [start, c]
            command: run
          - id: b
            needs: a
            command: run
          - id: c
            needs: b
            command: run
          - id: self
            needs: self
            command: run
        """)
    assert found == [(5, "needs form a cycle: a -> b -> c -> a (each step needs the one before it); "
                         "remove one of these needs"),
                     (15, "step 'self' needs itself")]


def test_inputs_must_name_an_output_an_ancestor_produces() -> None:
    found = problems("""\
        name: p
        steps:
          - id: prepare
            command: run
            outputs: [features]
          - id: side
            command: run
            outputs: [other]
          - id: train
            needs: [prepare]
            command: run
            inputs:
              a: artifact:prepare/feature
              b: artifact:side/other
              c: artifact:nowhere/x
              d: dataset:ok@v2
              e: s3://bucket/x
        """)
    assert found == [
        (13, "step 'train' uses output 'feature' of step 'prepare', which does not produce it (its outputs: features)"),
        (14, "step 'train' refers to step 'side', which is not an earlier step: add 'side' to needs (directly or "
             "through a step it needs)"),
        (15, "step 'train' refers to step 'nowhere', which is no step in this pipeline"),
        (17, "step 'train': input 'e' 's3://bucket/x' is not dataset:NAME[@vN] or artifact:STEP/NAME or "
             "model:NAME[@vN|@alias]")]


def test_an_ancestor_through_another_step_counts() -> None:
    pipeline = load_pipeline(textwrap.dedent("""\
        name: p
        steps:
          - {id: a, command: run, outputs: [x]}
          - {id: b, command: run, needs: a}
          - {id: c, command: run, needs: b, inputs: {x: "artifact:a/x"}, when: steps.a.outputs.x == 'y'}
        """))
    assert pipeline.levels == (("a",), ("b",), ("c",))


def test_conditions_that_do_not_parse_or_name_unknown_things() -> None:
    found = problems("""\
        name: p
        params: {min_auc: 0.9}
        steps:
          - id: train
            command: run
          - id: evaluate
            needs: train
            command: run
            when: "steps.train.metrics.auc >> 1"
          - id: gate
            needs: evaluate
            gate:
              step: evaluate
              conditions:
                - steps.evaluate.metrics.auc >= params.min_acu
                - steps.deploy.metrics.x > 1
                - steps.evaluate.outputs.report == 'ok'
        """)
    assert found == [
        (9, "step 'evaluate': when: expected a value, found '>' (at character 26 of 'steps.train.metrics.auc >> 1')"),
        (15, "step 'gate': params.min_acu is not a pipeline param; did you mean 'min_auc'?"),
        (16, "step 'gate' refers to step 'deploy', which is no step in this pipeline"),
        (17, "step 'gate' uses output 'report' of step 'evaluate', which does not produce it (its outputs: none)")]


def test_an_expression_problem_points_at_its_column() -> None:
    with pytest.raises(PipelineError) as caught:
        load_pipeline('name: p\nsteps:\n  - id: a\n    command: run\n    when: "params.x <> 1"\n')
    problem = caught.value.problems[0]
    assert (problem.line, problem.column) == (5, 22)  # the second '>' of "<>", inside the quotes


def test_bad_special_step_fields() -> None:
    found = problems("""\
        name: p
        steps:
          - id: train
            command: run
            outputs: [model]
          - id: gate
            needs: train
            gate:
              step: train
              champion: {model: "model:fraud@v3", metric: auc, direction: up, min_seeds: 0}
          - id: check
            data_check: {dataset: "dataset:tx", reference: ref, methods: {age: kss}, drift_share: 2}
          - id: ok
            needs: train
            approval: {role: owner}
          - id: register
            needs: train
            register: {model: fraud, artifact: "dataset:tx"}
          - id: promote
            needs: train
            promote: {from: train, alias: production}
          - id: deploy
            deploy: {deployment: fraud, environment: prod, bake_s: -1}
          - id: both
            command: run
            approval: {}
        """)
    assert found == [
        (10, "step 'gate': gate.champion.model must name an alias (model:NAME@alias): the champion is the run "
             "behind it"),
        (10, "step 'gate': gate.champion.direction 'up' is not one of max, min"),
        (10, "step 'gate': gate.champion.min_seeds must be >= 1 and <= 1000, not 0"),
        (12, "step 'check': data_check.reference 'ref' is not valid: write profile:<digest>, deployment:NAME or "
             "dataset:NAME@vN"),
        (12, "step 'check': data_check.methods.age 'kss' is not one of ks, wasserstein, psi, jensenshannon, "
             "chisquare; did you mean 'ks'?"),
        (12, "step 'check': data_check.drift_share must be > 0 and <= 1, not 2"),
        (15, "step 'ok': approval.role 'owner' is not one of viewer, editor, admin"),
        (18, "step 'register': register.artifact 'dataset:tx' is not artifact:STEP/NAME"),
        (21, "step 'promote': 'train' is a job step, not register"),
        (23, "step 'deploy': deploy: name either from (a register or promote step) or model (model:NAME@...)"),
        (23, "step 'deploy': deploy.bake_s must be >= 0 and <= 604800, not -1"),
        (24, "step 'both': one of command, gate, data_check, approval, register, promote, deploy per step, not "
             "command and approval")]


def test_every_problem_is_reported_at_once_and_the_error_names_the_first() -> None:
    with pytest.raises(PipelineError) as caught:
        load_pipeline("name: 'bad name'\nconcurrency: later\nsteps: []\n")
    assert [p.line for p in caught.value.problems] == [1, 2, 3]
    assert caught.value.message.startswith("pipeline:1:") and "(and 2 more)" in caught.value.message
    assert caught.value.status == 422 and len(caught.value.details["problems"]) == 3


def test_dates_and_tags_in_params_are_refused() -> None:
    found = problems("name: p\nparams:\n  day: 2024-01-01\n  code: !!binary aGk=\nsteps:\n  - {id: a, command: run}\n")
    assert [line for line, _ in found] == [3, 4]
    assert "a timestamp value is not allowed: quote it" in found[0][1]


def _bench() -> object:
    spec = importlib.util.spec_from_file_location("bench_pipelines", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_generated_thousand_step_dag_validates() -> None:
    text = _bench().generated_pipeline(1000, seed=3)  # type: ignore[attr-defined]
    pipeline = load_pipeline(text)
    assert len(pipeline.steps) == len(pipeline.order) == 1000
    position = {sid: i for i, sid in enumerate(pipeline.order)}
    level = {sid: k for k, ids in enumerate(pipeline.levels) for sid in ids}
    for step in pipeline.steps:
        for need in step.needs:
            assert position[need] < position[step.id] and level[need] < level[step.id]
    assert sum(len(ids) for ids in pipeline.levels) == 1000


def test_cli_validate_prints_a_summary_for_a_valid_file() -> None:
    result = CliRunner().invoke(cli, ["pipelines", "validate", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "pipeline 'fraud-ml' is valid: 9 steps (3 jobs;" in result.output
    answer = json.loads(CliRunner().invoke(cli, ["--json", "pipelines", "validate", str(EXAMPLE)]).output)
    assert answer["valid"] and answer["steps"] == 9 and answer["levels"] == 8
    assert answer["special_steps"] == {"approval": 1, "data_check": 1, "deploy": 1, "gate": 1, "promote": 1,
                                       "register": 1}
    assert answer["digest"] == load_pipeline(EXAMPLE).digest()


def test_cli_validate_prints_file_line_col_per_problem_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "pipeline.yaml"
    bad.write_text("name: p\nsteps:\n  - id: a\n    needs: [b]\n    command: run\n")
    result = CliRunner().invoke(cli, ["pipelines", "validate", str(bad)])
    assert result.exit_code == 1
    assert result.output == f"{bad}:4:13: step 'a' needs 'b', which is no step in this pipeline\n"
    answer = json.loads(CliRunner().invoke(cli, ["pipelines", "validate", str(bad), "--json"]).output)
    assert answer == {"file": str(bad), "valid": False,
                      "problems": [{"line": 4, "column": 13, "message": "step 'a' needs 'b', which is no step "
                                    "in this pipeline"}]}


def test_cli_validate_reports_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["pipelines", "validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1 and "cannot read the file" in result.output


def test_cli_help_shows_an_example() -> None:
    result = CliRunner().invoke(cli, ["pipelines", "validate", "--help"])
    assert result.exit_code == 0 and "Example: cairn pipelines validate" in result.output


def test_a_step_with_a_bad_id_is_still_read_for_its_other_problems() -> None:
    assert problems("name: p\nsteps:\n  - just text\n  - id: 5\n    command: 3\n    needs: 5\n") == [
        (3, "step 1 must be a mapping of keys to values, not the text 'just text'"),
        (4, "step '5': id must be text, not the int 5"),
        (5, "step '5': command must be text, not the int 3"),
        (6, "step '5': needs must be text, not the int 5")]


def test_the_benchmark_script_runs_on_a_small_dag() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--validate", "--steps", "60", "--repeat", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "steps 60" in done.stdout and "validate_s_median" in done.stdout
