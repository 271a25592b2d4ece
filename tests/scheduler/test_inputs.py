"""What an agent prepares: a Python env for the job's requirements (cached), dataset versions
(pulled, verified, cached), and live logs while the job runs."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

from cairn.sdk.client import Client


def tiny_package(root: Path) -> Path:
    """A wheel of a one-module package, written directly (a wheel is a zip with metadata): pip
    installs it without building anything or reaching a package index."""
    wheel = root / "tinypkg-0.1-py3-none-any.whl"
    files = {"tinypkg/__init__.py": "VALUE = 42\n",
             "tinypkg-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1\n",
             "tinypkg-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: cairn-tests\nRoot-Is-Purelib: true\n"
                                           "Tag: py3-none-any\n"}
    record = [f"{name},sha256={_digest(text)},{len(text.encode())}" for name, text in files.items()]
    files["tinypkg-0.1.dist-info/RECORD"] = "\n".join([*record, "tinypkg-0.1.dist-info/RECORD,,"]) + "\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return wheel


def _digest(text: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()


def test_requirements_get_a_cached_env_and_datasets_are_pulled_into_the_job(
        client: Client, agents, project: str, queue: str, tmp_path: Path) -> None:
    agents.start(queue)
    data = tmp_path / "digits"
    data.mkdir()
    (data / "a.txt").write_text("seven")
    client.artifacts.push_dataset(project, "digits", data)
    pkg = tiny_package(tmp_path)
    spec = {"command": ["sh", "-c", 'python -c "import cairn, tinypkg; print(\'tinypkg\', tinypkg.VALUE)"; '
                                    'cat $CAIRN_DATASET_DIGITS/a.txt'],
            "code": "none", "queue": queue, "requirements": [str(pkg)], "datasets": ["digits@v1"]}
    first = client.wait_job(project, client.submit_job(spec, project)["id"], timeout=240)
    logs = client.job_logs(project, first["id"])
    assert first["status"] == "succeeded", logs
    assert "tinypkg 42" in logs and "seven" in logs and "creating python env" in logs
    second = client.wait_job(project, client.submit_job(spec, project)["id"], timeout=120)
    logs = client.job_logs(project, second["id"])
    assert second["status"] == "succeeded" and "(cached)" in logs and "tinypkg 42" in logs


def test_logs_can_be_followed_live_until_the_job_ends(client: Client, agents, project: str, queue: str) -> None:
    agents.start(queue)
    job = client.submit_job({"command": ["sh", "-c", "for i in 1 2 3 4 5; do echo tick $i; sleep 0.2; done"],
                             "code": "none", "queue": queue}, project)
    followed = b"".join(client.job_log_chunks(project, job["id"], follow=True)).decode()
    assert [line for line in followed.splitlines() if line.startswith("tick")] == [f"tick {i}" for i in range(1, 6)]
    assert client.wait_job(project, job["id"], timeout=30)["status"] == "succeeded"
