"""Every third-party module that Cairn's code imports at module level comes from a runtime
dependency in pyproject.toml, not only from the test extra: ``pip install .`` (the README's quick
start) must be enough for ``cairn up``. Imports inside functions or ``try`` blocks are the optional
ones (a framework a model flavour needs, the GPU libraries) and are left out."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
CODE = [ROOT / "src" / "cairn", ROOT / "services"]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def module_level_imports(path: Path) -> set[str]:
    """Top-level names imported by statements of the module's body (not in functions, classes or
    ``try`` blocks)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_module_level_imports_come_from_runtime_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    distributions = packages_distributions()
    missing: dict[str, set[str]] = {}
    for root in CODE:
        for path in root.rglob("*.py"):
            for module in module_level_imports(path):
                if module in sys.stdlib_module_names or module in ("cairn", "__future__"):
                    continue
                dists = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
                if not dists:
                    continue  # not installed here: an optional import guarded elsewhere
                if not dists & runtime:
                    missing.setdefault(f"{module} ({', '.join(sorted(dists))})", set()).add(
                        str(path.relative_to(ROOT)))
    assert not missing, f"imported at module level but not a runtime dependency: {missing}"


def test_the_check_sees_a_module_level_import(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import json\nimport blake3 as b\nfrom yaml import safe_load\n"
                      "def f():\n    import torch\ntry:\n    import cupy\nexcept ImportError:\n    pass\n")
    assert module_level_imports(source) == {"json", "blake3", "yaml"}
