"""The hosts module's machine scripts rendered for the cases the applied test cannot reach: under
systemd (the test's namespaces have none, so they run ``cairn-supervise``), with and without
scheduled backups. ``templatefile()`` needs no provider: ``terraform console`` renders each
script, ``sh -n`` reads it, and the backup script that the setup writes through a heredoc is
written for real (into a temporary root) and read too, so its quoting of ``$(date ...)`` (kept
for when the backup runs, not expanded when the setup runs) is checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

TEMPLATES = Path(__file__).resolve().parents[2] / "infra" / "terraform" / "modules" / "hosts" / "templates"

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH")


def render(template: str, values: dict[str, Any], workdir: Path) -> str:
    expression = f"templatefile({json.dumps(str(TEMPLATES / template))}, jsondecode({json.dumps(json.dumps(values))}))\n"
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"}
    done = subprocess.run(["terraform", "console"], cwd=workdir, env=env, input=expression, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = done.stdout.strip()
    match = re.fullmatch(r"<<EOT\n(.*)\nEOT", text, flags=re.S)
    return match.group(1) + "\n" if match else json.loads(text)


def setup_values(root: Path, manager: str, backup: dict[str, Any] | None) -> dict[str, Any]:
    unit = {"name": "registry", "role": "registry", "exec": "$VENV/bin/python -m cairn.services.registry",
            "env": {"CAIRN_PORT": "7100"}, "ready": "http://10.0.0.11:7100/healthz"}
    return {"host": "cairn-1", "root": str(root), "install": "wheel", "install_source": "/tmp/cairn.whl",
            "package": "cairn", "python": "python3", "wheel_name": "cairn.whl", "cluster": "prod", "js_replicas": 3,
            "nats_nodes": ["cairn-1=10.0.0.11:4222:6222:7422"], "units": [unit], "manager": manager,
            "extra_env": {"PIP_DISABLE_PIP_VERSION_CHECK": "1"}, "release": "cairn.whl", "gateway": True,
            "backup": backup}


def sh_n(script: str) -> None:
    checked = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("manager", ["systemd", "cairn-supervise"])
@pytest.mark.parametrize("with_backup", [True, False])
def test_setup_and_teardown_render_to_valid_shell(tmp_path: Path, manager: str, with_backup: bool) -> None:
    root = tmp_path / "root"
    backup = {"dir": f"{root}/backups", "schedule": "*-*-* 03:00:00", "keep": 3} if with_backup else None
    setup = render("setup.sh.tftpl", setup_values(root, manager, backup), tmp_path)
    sh_n(setup)
    assert ("cairn-backup.timer" in setup) == (manager == "systemd")  # written, or removed when unset
    assert ("OnCalendar=*-*-* 03:00:00" in setup) == (with_backup and manager == "systemd")
    teardown = render("teardown.sh.tftpl", {"host": "cairn-1", "root": str(root), "manager": manager,
                                            "extra_env": {}}, tmp_path)
    sh_n(teardown)
    if not with_backup:
        assert 'rm -f "$ROOT/etc/backup.sh"' in setup
        return

    # the heredoc that writes backup.sh, run as the setup runs it (ROOT and VENV expanded)
    heredoc = re.search(r'^cat > "\$ROOT/etc/backup\.sh" <<CAIRN_BACKUP\n.*?^CAIRN_BACKUP\n', setup, flags=re.S | re.M)
    assert heredoc, setup
    (root / "etc").mkdir(parents=True)
    wrote = subprocess.run(["sh", "-c", f"ROOT='{root}'; VENV='{root}/venv'\n{heredoc.group(0)}"],
                           capture_output=True, text=True, timeout=30)
    assert wrote.returncode == 0, wrote.stderr
    script = (root / "etc" / "backup.sh").read_text()
    sh_n(script)
    assert '--out "' + f"{root}/backups/" + '$(date -u +%Y%m%dT%H%M%S.%NZ)"' in script  # expanded when it runs
    assert f'. "{root}/etc/nats/env/admin.env"' in script and f'"{root}/venv/bin/cairn" --json backup create' in script
    assert "head -n -3" in script
