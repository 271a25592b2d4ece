"""Node references as users write them, and as the API prints them.

    dataset:reviews@v3   dataset:reviews@3   dataset:reviews (every version)
    run:<run id>
    model:churn@v2   model:churn@2   model:churn@production (an alias)   model:churn (every version)
    blob:<digest>   commit:<sha>   environment:<digest>   job:<id>   sweep:<id>   deployment:<id>
    pipeline_run:<id>   trace:<trace id>

A project-scoped route resolves names in its project; ``kind:<project>/<rest>`` names another
project explicitly (blobs, commits and environments belong to no project).
"""

from __future__ import annotations

from dataclasses import dataclass

from cairn.kernel.errors import InvalidInput
from cairn.kernel.ids import PROJECT_NAME, anchored

KINDS = ("dataset", "run", "model", "blob", "commit", "environment", "job", "sweep", "deployment", "pipeline_run",
         "trace", "logged_model")
GLOBAL_KINDS = ("blob", "commit", "environment")
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
REF_RE = anchored(rf"(?P<kind>[a-z_]+):(?:(?P<project>{PROJECT_NAME})/)?(?P<name>{_NAME})"
                  r"(?:@(?P<at>[A-Za-z0-9][A-Za-z0-9_-]{0,63}))?")
VERSION_RE = anchored(r"v?(\d+)")
EXAMPLES = "dataset:reviews@v3, run:<id>, model:churn@2, model:churn@production, blob:<digest>"


@dataclass(frozen=True)
class NodeRef:
    """A parsed reference: ``at`` is a version number, an alias, or None."""

    kind: str
    project: str | None
    name: str
    version: int | None = None
    alias: str | None = None

    @property
    def is_container(self) -> bool:
        return self.kind in ("dataset", "model") and self.version is None and self.alias is None


def parse_ref(text: str, project: str | None) -> NodeRef:
    """Parse ``text``; ``project`` is the route's project (None on unscoped routes)."""
    match = REF_RE.match(text.strip())
    if match is None or match.group("kind") not in KINDS:
        raise InvalidInput(f"node reference {text!r} is not valid; use KIND:NAME[@VERSION|@ALIAS], "
                           f"e.g. {EXAMPLES}", details={"field": "node"})
    kind, name, at = match.group("kind"), match.group("name"), match.group("at")
    if kind in GLOBAL_KINDS:
        if match.group("project") or at:
            raise InvalidInput(f"{kind} references name no project or version: {kind}:<id>",
                               details={"field": "node"})
        return NodeRef(kind, None, name)
    owner = match.group("project") or project
    if owner is None:
        raise InvalidInput(f"{text!r} needs a project: use the project's route or write {kind}:<project>/{name}",
                           details={"field": "node"})
    if at is None:
        return NodeRef(kind, owner, name)
    if kind not in ("dataset", "model"):
        raise InvalidInput(f"{kind} references take no '@': {kind}:<id>", details={"field": "node"})
    version = VERSION_RE.match(at)
    if version is not None:
        return NodeRef(kind, owner, name, version=int(version.group(1)))
    if kind == "dataset":
        raise InvalidInput(f"dataset version {at!r} is not a number; use dataset:{name}@v3",
                           details={"field": "node"})
    return NodeRef(kind, owner, name, alias=at)


def display_ref(kind: str, name: str, version: str | None) -> str:
    """How a node is printed: the same syntax users type (without the project)."""
    if kind in ("dataset_version", "model_version"):
        return f"{kind.split('_')[0]}:{name}@{version}"
    if kind == "alias":
        return f"model:{name}@{version}"
    return f"{kind}:{name}"
