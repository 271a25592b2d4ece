"""Job specs (no platform needed): normalisation, sizes, and what the SDK resolves client-side."""

from __future__ import annotations

from pathlib import Path

import pytest

from cairn.agent.attempt import param_env_name
from cairn.kernel.errors import InvalidInput
from cairn.sdk.jobs import prepare_spec
from cairn.services.scheduler.spec import memory_mib, parse_spec


def test_a_spec_is_normalised_with_defaults() -> None:
    spec = parse_spec({"command": "python train.py --lr '0.1 0.2'", "resources": {"memory": "2Gi", "cpus": 0.5}})
    assert spec["command"] == ["python", "train.py", "--lr", "0.1 0.2"]
    assert spec["resources"] == {"cpus": 0.5, "memory_mib": 2048, "gpus": 0, "gpu_type": None}
    assert (spec["queue"], spec["priority"], spec["nodes"], spec["max_retries"], spec["code"]) == \
        ("default", 0, 1, 0, None)


@pytest.mark.parametrize("value,mib", [(512, 512), ("512Mi", 512), ("4Gi", 4096), ("2GB", 2048), ("1T", 1 << 20)])
def test_memory_sizes(value: object, mib: int) -> None:
    assert memory_mib(value) == mib


@pytest.mark.parametrize("raw,field", [
    ({"command": "x", "queue": "Bad Queue"}, "queue"),
    ({"command": "x", "params": {"a": {"nested": 1}}}, "params"),
    ({"command": "x", "env": {"CAIRN_TOKEN": "x"}}, "env"),
    ({"command": "x", "code": {"archive_digest": "abc"}}, "code.archive_digest"),
    ({"command": "x", "surprise": 1}, "surprise"),
])
def test_bad_fields_are_named(raw: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_spec(raw)
    assert err.value.message.startswith(field)


def test_a_pipeline_step_may_set_its_cairn_pipeline_variables_but_no_other_cairn_name() -> None:
    spec = parse_spec({"command": "x", "env": {"CAIRN_PIPELINE": "ml", "CAIRN_PIPELINE_RUN": "r1", "A": "1"}})
    assert spec["env"] == {"CAIRN_PIPELINE": "ml", "CAIRN_PIPELINE_RUN": "r1", "A": "1"}
    with pytest.raises(InvalidInput, match="CAIRN_RUN_ID"):
        parse_spec({"command": "x", "env": {"CAIRN_RUN_ID": "forged"}})


def test_the_sdk_reads_a_requirements_file_and_code_none(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("numpy>=1.26  # arrays\n\n# comment\n./local-pkg\n")
    prepared = prepare_spec(None, {"command": "x", "code": "none", "requirements": "requirements.txt",
                                   "project": "p"}, tmp_path, "p")
    assert prepared == {"command": "x", "code": None, "requirements": ["numpy>=1.26", "./local-pkg"]}


def test_param_names_become_environment_names() -> None:
    assert param_env_name("learning-rate") == "CAIRN_PARAM_LEARNING_RATE"
    assert param_env_name("opt.beta1") == "CAIRN_PARAM_OPT_BETA1"
