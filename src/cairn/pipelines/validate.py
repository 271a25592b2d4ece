"""Read a pipeline file and report everything wrong with it at once, each problem with the line
and column in the YAML where it is, before anything runs.

The file is composed into YAML's node tree (not loaded into plain dicts) because nodes keep their
marks: a problem found anywhere, even after the DAG is built, can still point at its line. The
graph checks (unknown ``needs``, cycles, what an input or condition may refer to) live in
:mod:`cairn.pipelines.graph`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cairn.kernel.errors import InvalidInput
from cairn.pipelines import spec
from cairn.pipelines.expr import Expr, ExpressionError, parse_expression

TOP_KEYS = ("name", "params", "concurrency", "on", "steps")
ON_KEYS = ("push", "event", "schedule", "manual")
COMMON_KEYS = ("id", "needs", "when", "inputs", "outputs")
JOB_KEYS = ("command", "params", "resources", "queue", "retries", "timeout_s", "env")
SPECIAL_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # kind -> (allowed, required)
    "gate": (("step", "conditions", "champion"), ("step",)),
    "data_check": (("dataset", "reference", "methods", "thresholds", "drift_share"), ("dataset", "reference")),
    "approval": (("role", "message"), ()),
    "register": (("model", "artifact"), ("model", "artifact")),
    "promote": (("from", "alias"), ("from", "alias")),
    "deploy": (("deployment", "environment", "from", "model", "bake_s"), ("deployment", "environment")),
}
CHAMPION_KEYS = ("model", "metric", "direction", "min_improvement", "min_seeds")
RESOURCE_KEYS = ("cpus", "memory", "gpus", "gpu_type")
_TAG = "tag:yaml.org,2002:"
# libyaml's parser when PyYAML was built with it (5x faster on a 1,000-step file); same nodes and marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SCALARS = yaml.constructor.SafeConstructor()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file; ``line`` and ``column`` count from 1."""

    line: int
    column: int
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "message": self.message}


class PipelineError(InvalidInput):
    """The file is not a valid pipeline; ``problems`` lists every reason, in file order."""

    def __init__(self, problems: list[Problem], source: str = "pipeline") -> None:
        self.problems = sorted(problems, key=lambda p: (p.line, p.column))
        first = self.problems[0]
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{source}:{first.line}:{first.column}: {first.message}{more}",
                         details={"problems": [p.to_dict() for p in self.problems]})


def load_pipeline(source: str | Path) -> spec.Pipeline:
    """Parse a pipeline from its text (a ``str``) or a file (a ``Path``); raise
    :class:`PipelineError` with every problem found."""
    name = "pipeline"
    if isinstance(source, Path):
        name, source = str(source), source.read_text(encoding="utf-8")
    checker = Checker()
    try:
        root = yaml.compose(source, Loader=_LOADER)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PipelineError([Problem(line, col, f"YAML syntax: {err.problem or err}")], name) from None
    except yaml.YAMLError as err:
        raise PipelineError([Problem(1, 1, f"YAML syntax: {err}")], name) from None
    if root is None:
        raise PipelineError([Problem(1, 1, "the file is empty: a pipeline needs name and steps")], name)
    from cairn.pipelines.graph import build

    _on_key_as_text(root)
    pipeline = build(checker, root)
    if checker.problems or pipeline is None:
        raise PipelineError(checker.problems, name)
    return pipeline


class Checker:
    """Typed reads of YAML nodes that record a :class:`Problem` (and return None) instead of
    raising, so one pass finds every problem."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, node: yaml.Node, message: str, offset: int = 0) -> None:
        mark = node.start_mark
        quoted = 1 if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"') and offset else 0
        self.problems.append(Problem(mark.line + 1, mark.column + 1 + offset + quoted, message))

    def mapping(self, node: yaml.Node, what: str, allowed: tuple[str, ...],
                required: tuple[str, ...] = ()) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        """``node``'s entries by key (key node, value node); unknown and duplicate keys reported."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what} must be a mapping of keys to values, not {_kind(node)}")
            return None
        entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag != _TAG + "str":
                self.problem(key, f"{what}: keys must be plain names, not {_kind(key)}")
                continue
            if key.value in entries:
                self.problem(key, f"{what}: duplicate key {key.value!r} (first on line "
                                  f"{entries[key.value][0].start_mark.line + 1})")
                continue
            entries[key.value] = (key, value)
            if allowed and key.value not in allowed:
                hint = difflib.get_close_matches(key.value, allowed, n=1)
                self.problem(key, f"{what}: unknown key {key.value!r}" + (
                    f"; did you mean {hint[0]!r}?" if hint else f"; known keys: {', '.join(allowed)}"))
        for name in required:
            if name not in entries:
                self.problem(node, f"{what}: missing required key {name!r}")
        return entries

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node] | None:
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"{what} must be a list, not {_kind(node)}")
            return None
        return list(node.value)

    def scalar(self, node: yaml.Node, what: str) -> Any:
        """Any scalar's value (str, int, float, bool, None); None with a problem for a collection."""
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, f"{what} must be a single value, not {_kind(node)}")
            return None
        construct = _SCALARS.yaml_constructors.get(node.tag)
        if node.tag.removeprefix(_TAG) not in ("null", "bool", "int", "float", "str") or construct is None:
            # dates, binary, local tags: nothing JSON can carry to a step; quote it to mean the text
            self.problem(node, f"{what}: a {node.tag.removeprefix(_TAG)} value is not allowed: quote it "
                               "to mean the text")
            return None
        try:
            return construct(_SCALARS, node)
        except (yaml.YAMLError, ValueError) as err:
            self.problem(node, f"{what}: {getattr(err, 'problem', None) or err}")
            return None

    def string(self, node: yaml.Node, what: str, pattern: Any = None, rule: str = "") -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag != _TAG + "str":
            self.problem(node, f"{what} must be text, not {_kind(node)}")
            return None
        if pattern is not None and not pattern.match(node.value):
            self.problem(node, f"{what} {node.value!r} is not valid: {rule}")
            return None
        return str(node.value)

    def choice(self, node: yaml.Node, what: str, options: tuple[str, ...]) -> str | None:
        value = self.string(node, what)
        if value is not None and value not in options:
            hint = difflib.get_close_matches(value, options, n=1)
            self.problem(node, f"{what} {value!r} is not one of {', '.join(options)}"
                         + (f"; did you mean {hint[0]!r}?" if hint else ""))
            return None
        return value

    def number(self, node: yaml.Node, what: str, low: float = 0.0, high: float | None = None,
               integer: bool = False, low_open: bool = False) -> Any:
        tags = (_TAG + "int",) if integer else (_TAG + "int", _TAG + "float")
        if not isinstance(node, yaml.ScalarNode) or node.tag not in tags:
            self.problem(node, f"{what} must be {'a whole number' if integer else 'a number'}, not {_kind(node)}")
            return None
        value = self.scalar(node, what)
        if value != value or value < low or (low_open and value == low) or (high is not None and value > high):
            bound = f"{'>' if low_open else '>='} {low}" + (f" and <= {high}" if high is not None else "")
            self.problem(node, f"{what} must be {bound}, not {value}")
            return None
        return value if integer else float(value)  # 2 and 2.0 mean the same: one canonical form

    def expression(self, node: yaml.Node, what: str) -> Expr | None:
        text = self.string(node, what)
        if text is None:
            return None
        try:
            return parse_expression(text)
        except ExpressionError as err:
            self.problem(node, f"{what}: {err.message} (at character {err.offset + 1} of {text!r})", err.offset)
            return None

    def ref(self, node: yaml.Node, what: str, kinds: tuple[str, ...] = ("dataset", "artifact", "model")) -> spec.Ref | None:
        text = self.string(node, what)
        if text is None:
            return None
        ref = spec.parse_ref(text)
        if ref is None or ref.kind not in kinds:
            forms = {"dataset": "dataset:NAME[@vN]", "artifact": "artifact:STEP/NAME",
                     "model": "model:NAME[@vN|@alias]"}
            self.problem(node, f"{what} {text!r} is not {' or '.join(forms[k] for k in kinds)}")
            return None
        return ref


def _on_key_as_text(root: yaml.Node) -> None:
    """YAML 1.1 reads a bare ``on`` key as the boolean true (GitHub Actions files meet the same
    trap); at the top of a pipeline it can only mean the trigger key, so it is read as text."""
    if isinstance(root, yaml.MappingNode):
        for key, _ in root.value:
            if isinstance(key, yaml.ScalarNode) and key.tag == _TAG + "bool" and key.value in ("on", "On", "ON"):
                key.tag = _TAG + "str"
                key.value = "on"


def read_on(c: Checker, node: yaml.Node) -> spec.Triggers | None:
    """``on: {push: {branches, tags, paths}, event: {type, where} | [..], schedule: {cron, tz} |
    [..], manual: bool}``; each filter is checked by the code that will apply it (push and event
    filters from :mod:`cairn.pipelines.triggers`, cron from :mod:`cairn.pipelines.cron`)."""
    from cairn.pipelines.cron import CronSchedule
    from cairn.pipelines.triggers import EventFilter, PushFilter

    entries = c.mapping(node, "on", ON_KEYS)
    if entries is None:
        return None
    before = len(c.problems)
    push = None
    if "push" in entries:
        value = entries["push"][1]
        raw = _python(value) if not (isinstance(value, yaml.ScalarNode) and value.tag == _TAG + "null") else {}
        if not isinstance(raw, dict):
            c.problem(value, f"on.push must be a mapping of branches, tags and paths, not {_kind(value)}")
        else:
            try:
                flt = PushFilter.from_spec(raw)
                push = spec.PushTrigger(flt.branches, flt.tags, flt.paths)
            except InvalidInput as err:
                c.problem(value, f"on.push: {err.message}")
    events: list[spec.EventTrigger] = []
    for item in _one_or_many(c, entries.get("event"), "on.event"):
        raw = _python(item)
        if not isinstance(raw, dict):
            c.problem(item, f"on.event must be a mapping with type and where, not {_kind(item)}")
            continue
        try:
            event_filter = EventFilter.from_spec(raw)
            events.append(spec.EventTrigger(event_filter.type, event_filter.where))
        except InvalidInput as err:
            c.problem(item, f"on.event: {err.message}")
    schedules: list[spec.ScheduleTrigger] = []
    for item in _one_or_many(c, entries.get("schedule"), "on.schedule"):
        fields = c.mapping(item, "on.schedule", ("cron", "tz"), ("cron",))
        if fields is None or "cron" not in fields:
            continue
        cron = c.string(fields["cron"][1], "on.schedule: cron")
        tz = c.string(fields["tz"][1], "on.schedule: tz") if "tz" in fields else "UTC"
        if cron is None or tz is None:
            continue
        try:
            CronSchedule.parse(cron, tz)
            schedules.append(spec.ScheduleTrigger(cron, tz))
        except InvalidInput as err:
            c.problem(fields["tz" if (err.details or {}).get("field") == "tz" else "cron"][1],
                      f"on.schedule: {err.message}")
    manual = True
    if "manual" in entries:
        value = entries["manual"][1]
        if not isinstance(value, yaml.ScalarNode) or value.tag != _TAG + "bool":
            c.problem(value, f"on.manual must be true or false, not {_kind(value)}")
        else:
            manual = bool(c.scalar(value, "on.manual"))
    if len(c.problems) != before:
        return None
    return spec.Triggers(push, tuple(events), tuple(schedules), manual, declared=True)


def _one_or_many(c: Checker, entry: tuple[yaml.Node, yaml.Node] | None, what: str) -> list[yaml.Node]:
    if entry is None:
        return []
    node = entry[1]
    if isinstance(node, yaml.SequenceNode):
        if not node.value:
            c.problem(node, f"{what} is an empty list: remove it or give at least one")
        return list(node.value)
    return [node]


def _python(node: yaml.Node) -> Any:
    """A node as plain data (the trigger filters read dicts and lists)."""
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag.removeprefix(_TAG)
    return {"str": f"the text {node.value!r}", "null": "empty", "bool": f"the boolean {node.value}"}.get(
        tag, f"the {tag} {node.value}")
