"""Pure comparison functions behind `runs diff` and `runs reproduce`."""

from __future__ import annotations

import math

from cairn.sdk.run_diff import compare_environments, diff_mapping, diff_runs, metric_deltas


def _env(**over: object) -> dict:
    base = {"python": {"version": "3.11.7", "implementation": "CPython", "executable": "python3"},
            "os": {"system": "Linux", "release": "6.1", "distro": "Debian 12"}, "hostname": "box-a",
            "cpu": {"model": "AMD EPYC", "count": 16}, "memory_bytes": 1 << 37,
            "gpu": {"devices": [{"name": "NVIDIA H100", "driver": "550.54", "memory_mib": 81559}],
                    "driver": "550.54", "cuda_driver": "12.4", "cuda": "12.4", "cudnn": "90100"},
            "packages": ["numpy==2.1.0", "torch==2.13.0", "pandas==2.2.0"],
            "frameworks": {"torch": "2.13.0"}, "env": {"OMP_NUM_THREADS": "8"}}
    base.update(over)
    return base


def test_diff_mapping_has_added_removed_changed() -> None:
    assert diff_mapping({"a": 1, "b": 2}, {"b": 3, "c": 4}) == {
        "added": {"c": 4}, "removed": {"a": 1}, "changed": {"b": {"a": 2, "b": 3}}}


def test_identical_environments_compare_identical() -> None:
    assert compare_environments(_env(), _env())["identical"] is True


def test_environment_differences_land_in_their_section() -> None:
    b = _env(packages=["numpy==2.2.0", "torch==2.13.0", "scipy==1.14.0"], hostname="box-b",
             gpu={"devices": [{"name": "NVIDIA A100"}], "driver": "535.1", "cuda_driver": "12.2",
                  "cuda": "12.4", "cudnn": "90100"}, env={"OMP_NUM_THREADS": "4"})
    diff = compare_environments(_env(), b)
    assert diff["identical"] is False
    assert diff["packages"] == {"added": {"scipy": "1.14.0"}, "removed": {"pandas": "2.2.0"},
                                "changed": {"numpy": {"a": "2.1.0", "b": "2.2.0"}}}
    assert diff["hardware"]["changed"] == {"gpu.models": {"a": "NVIDIA H100", "b": "NVIDIA A100"}}
    assert diff["drivers"]["changed"] == {"driver": {"a": "550.54", "b": "535.1"},
                                          "cuda_driver": {"a": "12.4", "b": "12.2"}}
    assert diff["host"]["changed"] == {"hostname": {"a": "box-a", "b": "box-b"}}
    assert diff["env"]["changed"] == {"OMP_NUM_THREADS": {"a": "8", "b": "4"}}
    assert diff["python"]["changed"] == {} and diff["frameworks"]["changed"] == {}


def test_missing_environment_is_reported_not_raised() -> None:
    diff = compare_environments(None, _env())
    assert diff["recorded"] == {"a": False, "b": True} and diff["identical"] is False


def test_metric_deltas_absolute_tolerance() -> None:
    out = metric_deltas({"loss": 0.30, "acc": 0.90}, {"loss": 0.32, "acc": 0.90}, 0.01)
    assert math.isclose(out["metrics"]["loss"]["delta"], 0.02)
    assert out["metrics"]["loss"]["within_tolerance"] is False
    assert out["metrics"]["acc"] == {"a": 0.9, "b": 0.9, "delta": 0.0, "relative": 0.0, "within_tolerance": True}
    assert out["all_within_tolerance"] is False


def test_metric_deltas_relative_and_per_key_tolerance() -> None:
    assert metric_deltas({"loss": 100.0}, {"loss": 104.0}, 0.05, relative=True)["all_within_tolerance"] is True
    per_key = metric_deltas({"loss": 1.0, "acc": 0.5}, {"loss": 1.5, "acc": 0.5}, {"loss": 1.0, "*": 0.0})
    assert per_key["all_within_tolerance"] is True


def test_metric_deltas_keys_in_one_run_only_and_nan() -> None:
    out = metric_deltas({"loss": "NaN", "a_only": 1.0}, {"loss": "NaN", "b_only": 2.0})
    assert out["metrics"]["loss"]["within_tolerance"] is True and out["metrics"]["loss"]["delta"] is None
    assert out["only_in_a"] == ["a_only"] and out["only_in_b"] == ["b_only"]
    assert out["all_within_tolerance"] is False


def test_diff_runs_puts_each_difference_in_its_place() -> None:
    code_a = {"archive_digest": "a" * 64, "commit": "c1", "branch": "main", "dirty": False, "diff": ""}
    code_b = {"archive_digest": "b" * 64, "commit": "c1", "branch": "main", "dirty": True, "diff": "+x\n"}
    a = {"run": {"id": "r1", "project": "p", "params": {"lr": "0.1", "bs": "32"}},
         "record": {"environment": _env(), "code": code_a, "seeds": {"seed": 1}, "command": ["python", "t.py"]},
         "datasets": [{"dataset": "mnist", "version": 1, "manifest_digest": "d1"}], "metrics": {"loss": 0.5}}
    b = {"run": {"id": "r2", "project": "q", "params": {"lr": "0.2", "bs": "32"}},
         "record": {"environment": _env(), "code": code_b, "seeds": {"seed": 1}, "command": ["python", "t.py"]},
         "datasets": [{"dataset": "mnist", "version": 2, "manifest_digest": "d2"}], "metrics": {"loss": 0.4}}
    out = diff_runs(a, b)
    assert out["params"] == {"added": {}, "removed": {}, "changed": {"lr": {"a": "0.1", "b": "0.2"}}}
    assert out["code"]["changed"] == {"archive_digest": {"a": "a" * 64, "b": "b" * 64},
                                      "dirty": {"a": False, "b": True}}
    assert out["code"]["git_diff_changed"] is True and out["code"]["same_archive"] is False
    assert out["environment"]["identical"] is True
    assert out["datasets"]["changed"] == {"mnist": {"a": {"version": 1, "manifest_digest": "d1"},
                                                    "b": {"version": 2, "manifest_digest": "d2"}}}
    assert math.isclose(out["metrics"]["metrics"]["loss"]["delta"], -0.1)
    assert out["seeds"] == {"added": {}, "removed": {}, "changed": {}} and out["command"]["same"] is True
    assert (out["a"]["project"], out["b"]["project"]) == ("p", "q")


def test_system_metrics_are_left_out_unless_asked_for() -> None:
    run = {"run": {"id": "r", "params": {}}, "metrics": {"loss": 1.0, "system/cpu_percent": 50.0}}
    other = {"run": {"id": "s", "params": {}}, "metrics": {"loss": 1.0, "system/cpu_percent": 80.0}}
    assert set(diff_runs(run, other)["metrics"]["metrics"]) == {"loss"}
    assert set(diff_runs(run, other, system_metrics=True)["metrics"]["metrics"]) == {"loss", "system/cpu_percent"}
