"""Static checks of the Terraform modules and examples under infra/terraform/.

The aws and kubernetes modules cannot be applied here (their providers are not downloadable), so
what can be checked without a cloud is checked: formatting, that every file parses, that every
variable is documented, validated and used, that examples pass only inputs their modules declare
and every input they require, that the machines' boot script renders to valid shell, that the
modules name the same services as `cairn up`, `terraform validate` where a local provider mirror
has every provider a directory needs, and checkov's findings (where checkov is installed), each
skip carrying its reason. .github/workflows/terraform.yml runs `terraform validate` for every
module and example on a runner that reaches the registry.
"""

from __future__ import annotations

import functools
import json
import os
import py_compile
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cairn.up import REPLICABLE, SERVICES

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "infra" / "terraform"
MODULES = ("aws", "kubernetes")
EXAMPLES = ("aws", "kubernetes", "leaf-site")
# The per-directory checks cover these; fmt, parsing and the checkov skips cover all of
# infra/terraform (modules/hosts and its example included, which have tests of their own).
DIRS = [TERRAFORM / "modules" / name for name in MODULES] + [TERRAFORM / "examples" / name for name in EXAMPLES]
MIRROR = Path(os.environ.get("CAIRN_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is not installed: pip install -e '.[test]'")


def _unquote(value: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals and keys: '"name"' -> 'name'."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@functools.cache
def _parsed(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """Every top-level block of a directory's .tf files, by block type (parsing is slow: once)."""
    blocks: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            for kind, items in hcl2.load(handle).items():
                blocks.setdefault(kind, []).extend(items)
    return blocks


def _variables(directory: Path) -> dict[str, dict[str, Any]]:
    return {_unquote(name): body for block in _parsed(directory).get("variable", []) for name, body in block.items()}


def _terraform() -> str:
    found = shutil.which("terraform")
    if found is None:
        pytest.skip("terraform is not on PATH (https://developer.hashicorp.com/terraform/install)")
    return found


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("directory", DIRS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_directory_has_variables_and_outputs_and_every_module_a_readme(directory: Path) -> None:
    assert (directory / "variables.tf").is_file(), f"{directory} has no variables.tf"
    blocks = _parsed(directory)
    assert blocks.get("output"), f"{directory} declares no output"
    if directory.parent.name == "modules":
        assert (directory / "README.md").is_file(), f"{directory} has no README.md"


def test_terraform_fmt_finds_nothing_to_change() -> None:
    result = _run([_terraform(), "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)], cwd=ROOT)
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


def test_every_tf_file_parses() -> None:
    files = sorted(TERRAFORM.rglob("*.tf"))
    assert len(files) >= 20
    for path in files:
        with path.open() as handle:
            hcl2.load(handle)  # raises with the file's line on a syntax error


@pytest.mark.parametrize("directory", DIRS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_variable_has_a_description_a_type_and_a_validation(directory: Path) -> None:
    variables = _variables(directory)
    assert variables, f"{directory} declares no variable"
    for name, body in variables.items():
        assert len(_unquote(body.get("description", ""))) >= 15, f"{directory.name}: var.{name} has no real description"
        assert "type" in body, f"{directory.name}: var.{name} has no type"
        assert body.get("validation"), f"{directory.name}: var.{name} has no validation block"
        for rule in body["validation"]:
            assert f"var.{name}" in rule["condition"], f"{directory.name}: var.{name}'s validation does not look at it"


@pytest.mark.parametrize("directory", DIRS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_variable_is_used(directory: Path) -> None:
    text = "\n".join(path.read_text() for path in directory.iterdir()
                     if path.suffix in (".tf", ".tftpl") and path.name != "variables.tf")
    unused = [name for name in _variables(directory) if not re.search(rf"\bvar\.{re.escape(name)}\b", text)]
    assert not unused, f"{directory.name}: variables declared but never used: {unused}"


@pytest.mark.parametrize("directory", DIRS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_output_has_a_description(directory: Path) -> None:
    for block in _parsed(directory).get("output", []):
        for name, body in block.items():
            assert len(_unquote(body.get("description", ""))) >= 10, f"{directory.name}: output {name} has no description"


@pytest.mark.parametrize("example", EXAMPLES)
def test_examples_pass_only_declared_inputs_and_every_required_one(example: Path) -> None:
    directory = TERRAFORM / "examples" / example
    calls = [(name, body) for block in _parsed(directory).get("module", []) for name, body in block.items()]
    assert calls, f"example {example} calls no module"
    for name, body in calls:
        source = (directory / _unquote(body["source"])).resolve()
        declared = _variables(source)
        given = {key for key in body if key not in ("source", "version", "providers", "depends_on", "count", "for_each")
                 and not key.startswith("__")}
        assert given <= declared.keys(), f"{example}: module {name} gets inputs it does not declare: {given - declared.keys()}"
        required = {key for key, spec in declared.items() if "default" not in spec}
        assert required <= given, f"{example}: module {name} misses required inputs {required - given}"


# Replicated by the modules whether or not cairn.up.REPLICABLE names it: each metrics replica keeps
# points of its own and is told every replica's name (CAIRN_WRITER_REPLICAS; test_replica_wiring.py).
MODULE_REPLICABLE = set(REPLICABLE) | {"metrics"}


def test_modules_run_the_services_cairn_up_runs() -> None:
    """A service added to cairn.up.SERVICES (or made replicable) must be added to the modules."""
    for module in MODULES:
        local_values = {key: value for block in _parsed(TERRAFORM / "modules" / module).get("locals", []) for key, value in block.items()}
        assert set(local_values["service_ports"]) == set(SERVICES), f"modules/{module}: service_ports"
        assert len(set(local_values["service_ports"].values())) == len(SERVICES), f"modules/{module}: two services share a port"
        replicable = [_unquote(item) for item in local_values["replicable"]]
        assert len(replicable) == len(set(replicable)) and set(replicable) == MODULE_REPLICABLE, f"modules/{module}: replicable"


def test_every_kubernetes_pod_that_may_be_the_scheduler_gets_the_agents_credentials() -> None:
    """The scheduler's environment names the agents' NATS credentials file (it hands them to agents):
    each pod template that projects a service's credentials (the Deployment and the StatefulSet, the
    scheduler being either) must project ``agent.json`` for the scheduler too, or it starts without."""
    folder = TERRAFORM / "modules" / "kubernetes"
    text = {path.name: path.read_text() for path in folder.glob("*.tf")}
    assert 'CAIRN_SCHEDULER_AGENT_NATS_CREDS = "/etc/cairn/nats/creds/agent.json"' in text["services.tf"]
    for name in ("services.tf", "stateful.tf"):
        assert 'each.key == "scheduler" ? [each.key, "agent"] : [each.key]' in text[name], name
        assert 'path = "nats/creds/${items.value}.json"' in text[name], name


def test_every_kubernetes_pod_that_may_be_artifacts_over_s3_gets_its_keys() -> None:
    """Artifacts runs as a Deployment (one volume) or, with ``artifacts_s3``, as a StatefulSet: the
    S3 keys of ``artifacts_s3.credentials_secret`` must reach it in both, or it cannot reach S3."""
    folder = TERRAFORM / "modules" / "kubernetes"
    for name in ("services.tf", "stateful.tf"):
        text = (folder / name).read_text()
        assert ('for_each = each.key == "artifacts" && local.s3_credentials != null ? '
                '{ CAIRN_ARTIFACTS_S3_ACCESS_KEY = "access_key", CAIRN_ARTIFACTS_S3_SECRET_KEY = "secret_key" } : {}'
                in text), name


def test_no_lock_file_or_state_is_committed() -> None:
    tracked = _run(["git", "ls-files", str(TERRAFORM)], cwd=ROOT).stdout.split()
    leftovers = [path for path in tracked if re.search(r"(\.tfstate(\.backup)?|\.terraform\.lock\.hcl|/\.terraform/)", path)]
    assert not leftovers, f"state or provider files in git: {leftovers}"


def test_secrets_helper_compiles(tmp_path: Path) -> None:
    py_compile.compile(str(TERRAFORM / "modules" / "aws" / "templates" / "cairn_secrets.py"),
                       cfile=str(tmp_path / "out.pyc"), doraise=True)


@pytest.mark.parametrize("role,generator", [("nats", True), ("nats", False), ("services", False),
                                            ("gateway", False), ("agents", False)])
def test_boot_script_renders_to_valid_shell(tmp_path: Path, role: str, generator: bool) -> None:
    """templatefile() needs no provider: `terraform console` renders the script; `bash -n` reads it."""
    template = TERRAFORM / "modules" / "aws" / "templates" / "bootstrap.sh.tftpl"
    values = {
        "role": role, "name": "cairn", "region": "eu-central-1", "cairn_package": "cairn==0.9.0",
        "pip_index_url": "", "log_group": "/cairn/cairn/" + role, "agent_token_parameter": "/cairn/agent-token",
        "nats_names": ["nats1", "nats2", "nats3"], "replicas": 3, "client_port": 4222, "cluster_port": 6222,
        "leaf_port": 7422, "node": "nats1" if role == "nats" else "", "volume_serial": "vol0123456789abcdef0",
        "generator": generator,
        "nats_nodes": [{"name": f"nats{i}", "ip": f"10.40.0.{9 + i}", "subnet": 0} for i in (1, 2, 3)],
    }
    expression = f"templatefile({json.dumps(str(template))}, jsondecode({json.dumps(json.dumps(values))}))\n"
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"}
    rendered = subprocess.run([_terraform(), "console"], cwd=tmp_path, env=env, input=expression,
                              capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    script = json.loads(_run_json_string(rendered.stdout))
    assert script.startswith("#!/bin/bash\n")
    assert ("cairn-secrets generate" in script) == generator
    assert ("cluster config --out" in script) == (role == "nats")
    checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, f"bash -n on the {role} script: {checked.stderr}"


def _run_json_string(console_output: str) -> str:
    """`terraform console` prints a multi-line string as <<EOT ... EOT; make it a JSON string."""
    text = console_output.strip()
    match = re.fullmatch(r"<<EOT\n(.*)\nEOT", text, flags=re.S)
    return json.dumps(match.group(1) + "\n") if match else text


def _mirrored(directory: Path) -> bool:
    """Whether the local provider mirror holds every provider a directory (and its modules) needs."""
    needed: set[str] = set()
    todo = [directory]
    while todo:
        current = todo.pop()
        for block in _parsed(current).get("terraform", []):
            for providers in block.get("required_providers", []):
                needed |= {_unquote(spec["source"]) for spec in providers.values() if isinstance(spec, dict)}
        for block in _parsed(current).get("module", []):
            for body in block.values():
                todo.append((current / _unquote(body["source"])).resolve())
    return all((MIRROR / "registry.terraform.io" / source).is_dir() for source in needed)


# Only the examples whose providers this machine's mirror holds (here: aws); the others are
# validated by .github/workflows/terraform.yml, on a runner that reaches the registry.
@pytest.mark.parametrize("example", [e for e in EXAMPLES if _mirrored(TERRAFORM / "examples" / e)] or ["(none)"])
def test_terraform_validate_with_the_local_provider_mirror(example: str, tmp_path: Path) -> None:
    """An example's validation covers the modules it calls (examples/aws: modules/aws)."""
    terraform = _terraform()
    if example == "(none)":
        pytest.skip(f"{MIRROR} holds no provider an example needs (CAIRN_TF_PLUGIN_MIRROR names another mirror)")
    directory = TERRAFORM / "examples" / example
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"))
    work = copy / directory.relative_to(TERRAFORM)
    rc = tmp_path / "terraformrc"
    # The mirror has the plugin cache's layout: as the cache too, init links the provider
    # instead of copying hundreds of megabytes.
    rc.write_text(f'plugin_cache_dir = "{MIRROR}"\nplugin_cache_may_break_dependency_lock_file = true\n'
                  f'provider_installation {{\n  filesystem_mirror {{\n    path = "{MIRROR}"\n  }}\n}}\n')
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(rc), "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    init = _run([terraform, "init", "-backend=false", "-input=false", "-no-color"], cwd=work, env=env, timeout=300)
    assert init.returncode == 0, init.stdout + init.stderr
    validate = _run([terraform, "validate", "-no-color"], cwd=work, env=env, timeout=300)
    assert validate.returncode == 0, validate.stdout + validate.stderr


SKIP_COMMENT = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def test_every_checkov_skip_carries_its_reason() -> None:
    skips = 0
    for path in sorted(TERRAFORM.rglob("*.tf")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = SKIP_COMMENT.search(line)
            if match:
                skips += 1
                assert match.group(2) and len(match.group(2).strip()) >= 20, \
                    f"{path.relative_to(ROOT)}:{number}: checkov skip {match.group(1)} without a reason"
    assert skips > 0  # the modules do skip checks, each with its reason: this test must see them
