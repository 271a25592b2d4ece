"""Environment capture: GPU parsing from recorded nvidia-smi output, the env-var allowlist and its
secret filter, framework versions without importing frameworks, and the whole record."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

from cairn.sdk import environment as env

NVIDIA_SMI_CSV = """NVIDIA H100 80GB HBM3, 550.54.15, 81559
NVIDIA H100 80GB HBM3, 550.54.15, 81559
"""

NVIDIA_SMI_PLAIN = """Thu Nov 26 09:40:12 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
"""


def test_nvidia_smi_csv_gives_each_gpu_with_driver_and_memory() -> None:
    gpus = env.parse_nvidia_smi_csv(NVIDIA_SMI_CSV)
    assert gpus == [{"name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15", "memory_mib": 81559}] * 2


def test_nvidia_smi_csv_tolerates_not_supported_memory_and_blank_lines() -> None:
    gpus = env.parse_nvidia_smi_csv("\nTesla T4, 535.104.05, [N/A]\n\n")
    assert gpus == [{"name": "Tesla T4", "driver": "535.104.05", "memory_mib": None}]


def test_cuda_version_is_read_from_the_nvidia_smi_header() -> None:
    assert env.parse_cuda_driver_version(NVIDIA_SMI_PLAIN) == "12.4"
    assert env.parse_cuda_driver_version("no GPU here") is None


def test_cpu_model_from_cpuinfo_x86_and_arm() -> None:
    x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n"
    assert env.parse_cpuinfo_model(x86) == "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    assert env.parse_cpuinfo_model("processor : 0\nModel : Raspberry Pi 4 Model B Rev 1.4\n") == \
        "Raspberry Pi 4 Model B Rev 1.4"


def test_os_release_pretty_name() -> None:
    text = 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
    assert env.parse_os_release(text)["PRETTY_NAME"] == "Ubuntu 22.04.4 LTS"


def test_allowlisted_variables_are_recorded_and_others_are_not() -> None:
    environ = {"CUDA_VISIBLE_DEVICES": "0,1", "OMP_NUM_THREADS": "8", "NCCL_DEBUG": "INFO",
               "HOME": "/home/alice", "PATH": "/usr/bin", "CAIRN_JOB_ID": "j1"}
    picked = env.select_env_vars(environ, list(env.DEFAULT_ENV_ALLOWLIST))
    assert picked == {"CAIRN_JOB_ID": "j1", "CUDA_VISIBLE_DEVICES": "0,1", "NCCL_DEBUG": "INFO",
                      "OMP_NUM_THREADS": "8"}


def test_secrets_are_never_recorded_even_when_allowlisted() -> None:
    environ = {"HF_TOKEN": "hf_x", "AWS_SECRET_ACCESS_KEY": "s", "OPENAI_API_KEY": "k",
               "DB_PASSWORD": "p", "CAIRN_TOKEN": "cairn_x", "NCCL_IB_KEY": "k", "MY_SETTING": "ok"}
    allowlist = env.env_allowlist({"CAIRN_ENV_ALLOWLIST": "HF_TOKEN, AWS_*,OPENAI_API_KEY,DB_PASSWORD,CAIRN_*,MY_*"})
    assert env.select_env_vars(environ, allowlist) == {"MY_SETTING": "ok"}


def test_allowlist_from_the_environment_adds_to_the_defaults() -> None:
    allowlist = env.env_allowlist({"CAIRN_ENV_ALLOWLIST": "WANDB_MODE,HYDRA_*"})
    assert "CUDA_VISIBLE_DEVICES" in allowlist and "WANDB_MODE" in allowlist and "HYDRA_*" in allowlist


def test_credentials_in_allowlisted_urls_are_cut() -> None:
    picked = env.select_env_vars({"MLFLOW_TRACKING_URI": "https://bob:pw@mlflow.example.com/x"},
                                 ["MLFLOW_TRACKING_URI"])
    assert picked == {"MLFLOW_TRACKING_URI": "https://mlflow.example.com/x"}


def test_framework_versions_only_for_imported_modules() -> None:
    modules = {"torch": SimpleNamespace(__version__="2.13.0"), "sklearn": SimpleNamespace(__version__="1.6.1"),
               "os": SimpleNamespace()}
    assert env.framework_versions(modules) == {"sklearn": "1.6.1", "torch": "2.13.0"}


def test_torch_cuda_and_cudnn_versions_when_torch_is_imported() -> None:
    torch = SimpleNamespace(version=SimpleNamespace(cuda="12.4"),
                            backends=SimpleNamespace(cudnn=SimpleNamespace(version=lambda: 90100)))
    assert env.torch_cuda({"torch": torch}) == {"cuda": "12.4", "cudnn": "90100"}
    assert env.torch_cuda({}) == {}


def test_capture_never_imports_a_framework() -> None:
    code = ("import sys, json; from cairn.sdk.environment import capture_environment; capture_environment(); "
            "print(json.dumps([m for m in ('torch','tensorflow','jax','sklearn','xgboost') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_capture_records_command_seeds_packages_and_no_machine_paths() -> None:
    record = env.capture_environment(["python", "train.py", "--lr", "0.1"], {"seed": 7})
    json.dumps(record)  # JSON-ready
    assert record["command"] == ["python", "train.py", "--lr", "0.1"]
    assert record["seeds"] == {"seed": 7}
    names = [p.split("==")[0] for p in record["packages"]]
    assert names == sorted(names)
    assert any(p.startswith("cairn-mlops==") for p in record["packages"])
    assert "/" not in record["python"]["executable"]
    assert record["cpu"]["count"] >= 1 and record["memory_bytes"] > 0
    assert set(record["gpu"]) == {"devices", "driver", "cuda_driver", "cuda", "cudnn", "source"}


def test_installed_packages_read_only_the_metadata_headers_and_agree_with_importlib() -> None:
    """The quick header read gives what the e-mail parser of ``dist.metadata`` gives, for every
    installed distribution."""
    import importlib.metadata
    import re

    expected = sorted({f"{re.sub(r'[-_.]+', '-', d.metadata['Name']).lower()}=={d.version}"
                       for d in importlib.metadata.distributions() if d.metadata and d.metadata["Name"]})
    listed = env.installed_packages()
    assert sorted(set(listed)) == expected and len(listed) == len(set(listed))
    import pytest

    assert f"pytest=={pytest.__version__}" in listed


def test_a_description_that_looks_like_headers_is_not_read_as_them(tmp_path: Any) -> None:
    import importlib.metadata

    info = tmp_path / "odd_pkg-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_bytes(b"Metadata-Version: 2.1\r\nName: Odd_Pkg\r\nVersion: 1.2\r\n\r\n"
                                    b"Name: not-this\nVersion: 9\n")
    dist = importlib.metadata.PathDistribution(info)
    assert env._name_and_version(dist) == ("Odd_Pkg", "1.2")
    assert (dist.metadata["Name"], dist.version) == ("Odd_Pkg", "1.2")
