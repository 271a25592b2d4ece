"""Run ordinary MLflow client code in a fresh Python with only MLFLOW_TRACKING_URI and
MLFLOW_TRACKING_TOKEN pointing it at Cairn: nothing in the script knows about Cairn."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ScriptResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict:
        """The JSON object the script printed on its last line."""
        assert self.returncode == 0, self.stderr[-4000:]
        return json.loads(self.stdout.strip().splitlines()[-1])


def run_script(folder: Path, code: str, *, uri: str, token: str | None,
               env: dict[str, str] | None = None, timeout: float = 300) -> ScriptResult:
    code = textwrap.dedent(code)
    script = folder / f"script_{hashlib.sha256(code.encode()).hexdigest()[:12]}.py"
    script.write_text(code)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CAIRN_"))}
    child_env["MLFLOW_TRACKING_URI"] = uri
    if token is not None:
        child_env["MLFLOW_TRACKING_TOKEN"] = token
    child_env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  # errors surface at once, not after backoff
    child_env["GIT_PYTHON_REFRESH"] = "quiet"
    child_env.update(env or {})
    proc = subprocess.run([sys.executable, str(script)], cwd=folder, env=child_env, capture_output=True,
                          text=True, timeout=timeout)
    return ScriptResult(proc.returncode, proc.stdout, proc.stderr)
