"""From YAML nodes to a :class:`~cairn.pipelines.spec.Pipeline`: each step's fields, then the DAG
(unknown ``needs``, cycles, a deterministic topological order, levels) and the checks that need it:
an input, condition or special step may only refer to an ancestor, because only an ancestor is
sure to have finished, with its outputs and metrics, before the step starts."""

from __future__ import annotations

import difflib
import heapq
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from cairn.kernel.ids import ALIAS_RE, DATASET_NAME, DATASET_NAME_RE, MODEL_NAME_RE, PROJECT_NAME
from cairn.pipelines import spec
from cairn.pipelines.expr import Expr, references
from cairn.pipelines.validate import (
    CHAMPION_KEYS,
    COMMON_KEYS,
    JOB_KEYS,
    RESOURCE_KEYS,
    SPECIAL_KEYS,
    TOP_KEYS,
    Checker,
    read_on,
)
from cairn.protocol import memory_mib

# what a data_check compares with: a registered profile, a deployment's reference profile, or a
# dataset version (profiled when the step runs)
REFERENCE_RE = re.compile(rf"\A(?:profile:[0-9a-f]{{64}}|deployment:{PROJECT_NAME}|dataset:{DATASET_NAME}@v[1-9][0-9]*)\Z")
REFERENCE_RULE = "write profile:<digest>, deployment:NAME or dataset:NAME@vN"


@dataclass
class _Draft:
    """A step as read, with the nodes its later checks point at."""

    node: yaml.Node
    index: int
    fields: dict[str, Any] = field(default_factory=dict)
    needs: list[tuple[str, yaml.Node]] = field(default_factory=list)
    refs: list[tuple[str | None, str | None, yaml.Node]] = field(default_factory=list)  # (step, output|None, node)
    exprs: list[tuple[Expr, yaml.Node]] = field(default_factory=list)


def build(c: Checker, root: yaml.Node) -> spec.Pipeline | None:
    top = c.mapping(root, "the pipeline", TOP_KEYS, ("name", "steps"))
    if top is None:
        return None
    name = c.string(top["name"][1], "name", spec.STEP_ID, "letters, digits, '_' and '-'") if "name" in top else None
    concurrency = c.choice(top["concurrency"][1], "concurrency", spec.CONCURRENCY) if "concurrency" in top else "queue"
    params: dict[str, Any] = {}
    if "params" in top and (entries := c.mapping(top["params"][1], "params", ())) is not None:
        params = {k: c.scalar(v, f"params.{k}") for k, (_, v) in entries.items()}
    on = read_on(c, top["on"][1]) if "on" in top else spec.Triggers()
    drafts: dict[str, _Draft] = {}
    step_nodes = c.sequence(top["steps"][1], "steps") if "steps" in top else None
    if step_nodes is not None and not step_nodes:
        c.problem(top["steps"][1], "steps is empty: a pipeline needs at least one step")
    for index, node in enumerate(step_nodes or []):
        draft = _read_step(c, node, index, params)
        if draft is None:
            continue
        step_id = draft.fields["id"]
        if step_id in drafts:
            c.problem(node, f"duplicate step id {step_id!r} (first on line {drafts[step_id].node.start_mark.line + 1})")
            continue
        drafts[step_id] = draft
    order, levels, ancestors = _dag(c, drafts)
    for draft in drafts.values():
        _check_refs(c, draft, drafts, ancestors, params)
    if c.problems or name is None or concurrency is None or on is None:
        return None
    steps = tuple(_step(d) for d in drafts.values())
    return spec.Pipeline(name, steps, params, concurrency, tuple(order), tuple(tuple(level) for level in levels),
                         on=on)


def _read_step(c: Checker, node: yaml.Node, index: int, params: dict[str, Any]) -> _Draft | None:
    where = f"step {index + 1}"
    if isinstance(node, yaml.MappingNode):
        ids = [v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == "id"]
        if ids and isinstance(ids[0], yaml.ScalarNode):
            where = f"step {ids[0].value!r}"
    present = {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)} if isinstance(
        node, yaml.MappingNode) else set()
    kinds = [k for k in ("command", *SPECIAL_KEYS) if k in present]
    allowed = COMMON_KEYS + (JOB_KEYS if "command" in kinds or not kinds else ()) + tuple(SPECIAL_KEYS)
    entries = c.mapping(node, where, allowed, ("id",))
    if entries is None:
        return None
    if len(kinds) > 1:
        c.problem(node, f"{where}: one of command, {', '.join(SPECIAL_KEYS)} per step, not {' and '.join(kinds)}")
    elif not kinds:
        c.problem(node, f"{where}: a step needs a command (a job) or one of {', '.join(SPECIAL_KEYS)}")
    draft = _Draft(node, index)
    draft.fields["kind"] = "job" if not kinds or kinds[0] == "command" else kinds[0]
    draft.fields["line"] = node.start_mark.line + 1
    step_id = c.string(entries["id"][1], f"{where}: id", spec.STEP_ID,
                       "a letter or '_' then letters, digits, '_' or '-' (at most 64)") if "id" in entries else None
    draft.fields["id"] = step_id if step_id is not None else f"#{index + 1}"  # read on: report the rest too
    if "needs" in entries:
        value = entries["needs"][1]
        items = [value] if isinstance(value, yaml.ScalarNode) else c.sequence(value, f"{where}: needs") or []
        for item in items:
            if (need := c.string(item, f"{where}: needs")) is not None:
                draft.needs.append((need, item))
    if "when" in entries and (expr := c.expression(entries["when"][1], f"{where}: when")) is not None:
        draft.fields["when"] = expr
        draft.exprs.append((expr, entries["when"][1]))
    if "inputs" in entries and (inputs := c.mapping(entries["inputs"][1], f"{where}: inputs", ())) is not None:
        refs = {}
        for key, (_, value) in inputs.items():
            if (ref := c.ref(value, f"{where}: input {key!r}")) is not None:
                refs[key] = ref
                if ref.kind == "artifact":
                    draft.refs.append((ref.step, ref.name, value))
        draft.fields["inputs"] = refs
    if "outputs" in entries and (outs := c.sequence(entries["outputs"][1], f"{where}: outputs")) is not None:
        names = [c.string(o, f"{where}: output", spec.OUTPUT_NAME, "letters, digits, '_', '.' and '-'") for o in outs]
        draft.fields["outputs"] = tuple(n for n in names if n is not None)
    if draft.fields["kind"] == "job":
        _read_job(c, entries, where, draft)
    else:
        kind = draft.fields["kind"]
        _read_special(c, kind, entries[kind][1], f"{where}: {kind}", draft)
    return draft if step_id is not None else None


def _read_job(c: Checker, entries: dict[str, tuple[yaml.Node, yaml.Node]], where: str, draft: _Draft) -> None:
    f = draft.fields
    if "command" in entries:
        node = entries["command"][1]
        if isinstance(node, yaml.SequenceNode):
            parts = [c.string(p, f"{where}: command item") for p in node.value]
            f["command"] = tuple(p for p in parts if p is not None)
            if not node.value:
                c.problem(node, f"{where}: command is empty")
        else:
            f["command"] = c.string(node, f"{where}: command")
    if "params" in entries and (ps := c.mapping(entries["params"][1], f"{where}: params", ())) is not None:
        f["params"] = {k: c.scalar(v, f"{where}: params.{k}") for k, (_, v) in ps.items()}
    if "env" in entries and (env := c.mapping(entries["env"][1], f"{where}: env", ())) is not None:
        f["env"] = {k: v for k, (_, n) in env.items() if (v := c.string(n, f"{where}: env.{k}")) is not None}
    if "queue" in entries:
        f["queue"] = c.string(entries["queue"][1], f"{where}: queue")
    if "retries" in entries:
        f["retries"] = c.number(entries["retries"][1], f"{where}: retries", 0, 100, integer=True)
    if "timeout_s" in entries:
        f["timeout_s"] = c.number(entries["timeout_s"][1], f"{where}: timeout_s", 0, low_open=True)
    if "resources" in entries and (res := c.mapping(entries["resources"][1], f"{where}: resources",
                                                     RESOURCE_KEYS)) is not None:
        values: dict[str, Any] = {}
        if "cpus" in res:
            values["cpus"] = c.number(res["cpus"][1], f"{where}: resources.cpus", 0, 100000)
        if "gpus" in res:
            values["gpus"] = c.number(res["gpus"][1], f"{where}: resources.gpus", 0, 1024, integer=True)
        if "gpu_type" in res:
            values["gpu_type"] = c.string(res["gpu_type"][1], f"{where}: resources.gpu_type")
        if "memory" in res:
            try:
                values["memory_mib"] = memory_mib(c.scalar(res["memory"][1], f"{where}: resources.memory"))
            except ValueError as err:
                c.problem(res["memory"][1], f"{where}: resources.{err}")
        f["resources"] = spec.Resources(**{k: v for k, v in values.items() if v is not None})


def _read_special(c: Checker, kind: str, node: yaml.Node, where: str, draft: _Draft) -> None:
    allowed, required = SPECIAL_KEYS[kind]
    e = c.mapping(node, where, allowed, required)
    if e is None:
        return
    f = draft.fields
    if kind == "gate":
        step = c.string(e["step"][1], f"{where}.step") if "step" in e else None
        if step is not None:
            draft.refs.append((step, None, e["step"][1]))
        conditions = []
        for item in c.sequence(e["conditions"][1], f"{where}.conditions") or [] if "conditions" in e else []:
            if (expr := c.expression(item, f"{where}.conditions")) is not None:
                conditions.append(expr)
                draft.exprs.append((expr, item))
        champion = None
        if "champion" in e and (ch := c.mapping(e["champion"][1], f"{where}.champion", CHAMPION_KEYS,
                                                ("model", "metric"))) is not None:
            model = c.ref(ch["model"][1], f"{where}.champion.model", ("model",)) if "model" in ch else None
            if model is not None and model.alias is None:
                c.problem(ch["model"][1], f"{where}.champion.model must name an alias (model:NAME@alias): "
                                          "the champion is the run behind it")
            metric = c.string(ch["metric"][1], f"{where}.champion.metric") if "metric" in ch else None
            direction = c.choice(ch["direction"][1], f"{where}.champion.direction", ("max", "min")) \
                if "direction" in ch else "max"
            improvement = c.number(ch["min_improvement"][1], f"{where}.champion.min_improvement") \
                if "min_improvement" in ch else 0.0
            seeds = c.number(ch["min_seeds"][1], f"{where}.champion.min_seeds", 1, 1000, integer=True) \
                if "min_seeds" in ch else 1
            if model and model.alias and metric and direction and improvement is not None and seeds:
                champion = spec.Champion(model.name, model.alias, metric, direction, improvement, seeds)
        if step is not None and not conditions and champion is None and "champion" not in e:
            c.problem(node, f"{where}: a gate needs conditions, a champion, or both")
        f["special"] = spec.Gate(step or "", tuple(conditions), champion)
    elif kind == "data_check":
        dataset = c.ref(e["dataset"][1], f"{where}.dataset", ("dataset", "artifact")) if "dataset" in e else None
        if dataset is not None and dataset.kind == "artifact":
            draft.refs.append((dataset.step, dataset.name, e["dataset"][1]))
        reference = c.string(e["reference"][1], f"{where}.reference", REFERENCE_RE, REFERENCE_RULE) \
            if "reference" in e else None
        methods: dict[str, str] = {}
        if "methods" in e and (ms := c.mapping(e["methods"][1], f"{where}.methods", ())) is not None:
            methods = {k: m for k, (_, n) in ms.items()
                       if (m := c.choice(n, f"{where}.methods.{k}", spec.DRIFT_METHODS)) is not None}
        thresholds: dict[str, float] = {}
        if "thresholds" in e and (ts := c.mapping(e["thresholds"][1], f"{where}.thresholds",
                                                  spec.DRIFT_METHODS)) is not None:
            thresholds = {k: t for k, (_, n) in ts.items()
                          if (t := c.number(n, f"{where}.thresholds.{k}", 0, 1e9)) is not None}
        share = c.number(e["drift_share"][1], f"{where}.drift_share", 0, 1, low_open=True) \
            if "drift_share" in e else 0.5
        if dataset and reference and share is not None:
            f["special"] = spec.DataCheck(dataset, reference, methods, thresholds, share)
    elif kind == "approval":
        role = c.choice(e["role"][1], f"{where}.role", spec.ROLES) if "role" in e else "admin"
        message = c.string(e["message"][1], f"{where}.message") if "message" in e else ""
        f["special"] = spec.Approval(role or "admin", message or "")
    elif kind == "register":
        model_name = c.string(e["model"][1], f"{where}.model", MODEL_NAME_RE, "a model name") \
            if "model" in e else None
        artifact = c.ref(e["artifact"][1], f"{where}.artifact", ("artifact",)) if "artifact" in e else None
        if artifact is not None:
            draft.refs.append((artifact.step, artifact.name, e["artifact"][1]))
        if model_name and artifact:
            f["special"] = spec.Register(model_name, artifact)
        f["outputs"] = ("version",)
    elif kind == "promote":
        source = c.string(e["from"][1], f"{where}.from") if "from" in e else None
        if source is not None:
            draft.refs.append((source, "register", e["from"][1]))
        alias = c.string(e["alias"][1], f"{where}.alias", ALIAS_RE, "a letter, then letters, digits, '_', '-'") \
            if "alias" in e else None
        if source and alias:
            f["special"] = spec.Promote(source, alias)
    else:
        deployment = c.string(e["deployment"][1], f"{where}.deployment", DATASET_NAME_RE,
                              "letters, digits, '_' and '-'") if "deployment" in e else None
        environment = c.string(e["environment"][1], f"{where}.environment") if "environment" in e else None
        source = c.string(e["from"][1], f"{where}.from") if "from" in e else None
        model = c.ref(e["model"][1], f"{where}.model", ("model",)) if "model" in e else None
        if source is not None:
            draft.refs.append((source, "register|promote", e["from"][1]))
        if ("from" in e) == ("model" in e):
            c.problem(node, f"{where}: name either from (a register or promote step) or model (model:NAME@...)")
        bake = c.number(e["bake_s"][1], f"{where}.bake_s", 0, 86400 * 7) if "bake_s" in e else 0.0
        if deployment and environment and (source or model) and bake is not None:
            f["special"] = spec.Deploy(deployment, environment, source, model, bake)


def _dag(c: Checker, drafts: dict[str, _Draft]) -> tuple[list[str], list[list[str]], dict[str, set[str]]]:
    """Topological order (ties by file order), levels, and each step's ancestors; unknown needs and
    cycles reported (steps on or after a cycle get no ancestors and skip the ancestry checks)."""
    index = {sid: d.index for sid, d in drafts.items()}
    edges: dict[str, list[str]] = {sid: [] for sid in drafts}
    indegree = dict.fromkeys(drafts, 0)
    for sid, d in drafts.items():
        seen: set[str] = set()
        for need, node in d.needs:
            if need not in drafts:
                hint = difflib.get_close_matches(need, list(drafts), n=1)
                c.problem(node, f"step {sid!r} needs {need!r}, which is no step in this pipeline"
                          + (f"; did you mean {hint[0]!r}?" if hint else ""))
            elif need == sid:
                c.problem(node, f"step {sid!r} needs itself")
            elif need not in seen:
                seen.add(need)
                edges[need].append(sid)
                indegree[sid] += 1
    ready = [(index[s], s) for s, n in indegree.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    level: dict[str, int] = {}
    ancestors: dict[str, set[str]] = {}
    while ready:
        _, sid = heapq.heappop(ready)
        order.append(sid)
        needs = {n for n, _ in drafts[sid].needs if n in drafts and n != sid}
        level[sid] = 1 + max((level[n] for n in needs), default=-1)
        ancestors[sid] = set(needs).union(*(ancestors[n] for n in needs))
        for nxt in edges[sid]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                heapq.heappush(ready, (index[nxt], nxt))
    stuck = {s for s in drafts if s not in level}
    reported: set[str] = set()
    for sid in sorted(stuck, key=index.__getitem__):
        cycle = _cycle_from(sid, drafts, stuck)
        if cycle and not reported.intersection(cycle):
            reported.update(cycle)
            first = min(cycle, key=index.__getitem__)
            at = cycle.index(first)
            ring = cycle[at:] + cycle[:at]
            c.problem(drafts[first].node, "needs form a cycle: " + " -> ".join(ring + [first])
                      + " (each step needs the one before it); remove one of these needs")
    levels: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for sid in order:
        levels[level[sid]].append(sid)
    return order, levels, ancestors


def _cycle_from(start: str, drafts: dict[str, _Draft], stuck: set[str]) -> list[str]:
    """A cycle reachable from ``start`` along needs inside ``stuck``, in dependency order."""
    path: list[str] = []
    on_path: dict[str, int] = {}
    sid = start
    while sid not in on_path:
        on_path[sid] = len(path)
        path.append(sid)
        nxt = next((n for n, _ in drafts[sid].needs if n in stuck and n != sid), None)
        if nxt is None:
            return []
        sid = nxt
    cycle = path[on_path[sid]:]
    cycle.reverse()  # needs point backwards; print in run order: a -> b means b needs a
    return cycle


def _check_refs(c: Checker, d: _Draft, drafts: dict[str, _Draft], ancestors: dict[str, set[str]],
                params: dict[str, Any]) -> None:
    sid = d.fields["id"]
    mine = ancestors.get(sid)
    for step, output, node in d.refs:
        _check_step_ref(c, sid, step, output, node, drafts, mine)
    for expr, node in d.exprs:
        for ref in references(expr):
            if ref.step is None:
                if ref.name not in params:
                    hint = difflib.get_close_matches(ref.name, list(params), n=1)
                    c.problem(node, f"step {sid!r}: params.{ref.name} is not a pipeline param"
                              + (f"; did you mean {hint[0]!r}?" if hint else ""))
            else:
                _check_step_ref(c, sid, ref.step, ref.name if ref.kind == "outputs" else None, node, drafts, mine)


def _check_step_ref(c: Checker, sid: str, step: str | None, output: str | None, node: yaml.Node,
                    drafts: dict[str, _Draft], mine: set[str] | None) -> None:
    if step is None:
        return
    if step not in drafts:
        hint = difflib.get_close_matches(step, list(drafts), n=1)
        c.problem(node, f"step {sid!r} refers to step {step!r}, which is no step in this pipeline"
                  + (f"; did you mean {hint[0]!r}?" if hint else ""))
        return
    if mine is None:
        return  # on or after a cycle: that problem is reported already
    if step not in mine:
        c.problem(node, f"step {sid!r} refers to step {step!r}, which is not an earlier step: add {step!r} "
                        f"to needs (directly or through a step it needs)")
        return
    target = drafts[step].fields
    if output in ("register", "register|promote"):
        if target["kind"] not in output.split("|"):
            c.problem(node, f"step {sid!r}: {step!r} is a {target['kind']} step, not {output.replace('|', ' or ')}")
        return
    if output is not None and output not in target.get("outputs", ()):
        c.problem(node, f"step {sid!r} uses output {output!r} of step {step!r}, which does not produce it "
                        f"(its outputs: {', '.join(target.get('outputs', ())) or 'none'})")


def _step(d: _Draft) -> spec.Step:
    f = {k: v for k, v in d.fields.items() if v is not None}
    f["needs"] = tuple(dict.fromkeys(n for n, _ in d.needs))
    return spec.Step(**f)
