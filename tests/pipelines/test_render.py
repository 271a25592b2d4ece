"""Drawing pipelines: the example in every format, states, odd step ids, a 1,000-step DAG, and
``cairn pipelines show``. Mermaid and DOT are read back by small checkers written here (node and
edge lines, every edge's ends declared, safe node names); ``dot -Tsvg`` runs when Graphviz is here."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cairn.cli.main import cli
from cairn.pipelines import Pipeline, Step, load_pipeline
from cairn.pipelines.render import (
    STATES,
    node_id,
    render_dot,
    render_mermaid,
    render_rich,
    render_text,
)

EXAMPLE = Path(__file__).parent / "examples" / "ml.yaml"
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_pipelines.py"
EDGES = {("prepare", "train"), ("train", "evaluate"), ("prepare", "drift"), ("evaluate", "gate"),
         ("drift", "gate"), ("gate", "register"), ("register", "approve"), ("approve", "promote"),
         ("promote", "deploy")}
RUN_STATES = {"prepare": "succeeded", "train": "cached", "evaluate": "succeeded", "drift": "failed",
              "gate": "skipped", "register": "running", "approve": "waiting_approval", "promote": "pending"}
SAFE_NAME = re.compile(r"\An[A-Za-z0-9_]+\Z")


def check_mermaid(text: str) -> tuple[dict[str, str], set[tuple[str, str]], dict[str, set[str]]]:
    """(node -> label, edges, class -> nodes) of a flowchart, failing on any line it cannot read,
    an edge to an undeclared node, a node declared twice, an unsafe name or a raw quote in a label."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()
    defined: set[str] = set()
    classes: dict[str, set[str]] = {}
    for line in lines[1:]:
        if m := re.fullmatch(r'    (\S+)\["([^"]*)"\]', line):
            assert SAFE_NAME.match(m[1]) and m[1] not in nodes, line
            nodes[m[1]] = m[2]
        elif m := re.fullmatch(r"    (\S+) --> (\S+)", line):
            assert m[1] in nodes and m[2] in nodes, f"edge to an undeclared node: {line}"
            edges.add((m[1], m[2]))
        elif m := re.fullmatch(r"    classDef (\w+) fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6},color:#[0-9a-f]{6}", line):
            defined.add(m[1])
        elif m := re.fullmatch(r"    class (\S+) (\w+)", line):
            assert m[2] in defined, f"class {m[2]} used before its classDef"
            members = set(m[1].split(","))
            assert members <= set(nodes), line
            classes[m[2]] = members
        else:
            pytest.fail(f"a line that is no node, edge or class: {line!r}")
    return nodes, edges, classes


def check_dot(text: str) -> tuple[dict[str, str], set[tuple[str, str]], dict[str, str]]:
    """(node -> label, edges, node -> fill colour) of a digraph, failing like :func:`check_mermaid`."""
    lines = text.splitlines()
    assert re.fullmatch(r'digraph "[A-Za-z0-9_]+" \{', lines[0]) and lines[-1] == "}"
    nodes: dict[str, str] = {}
    fills: dict[str, str] = {}
    edges: set[tuple[str, str]] = set()
    for line in lines[1:-1]:
        if line in ("    rankdir=TB;",) or line.startswith("    node ["):
            continue
        if m := re.fullmatch(r'    "([^"\\]+)" \[label=<((?:[^<>]|<B>|</B>|<BR/>)*)>(?:, fillcolor="(#[0-9a-f]{6})", '
                             r'color="#[0-9a-f]{6}")?\];', line):
            assert SAFE_NAME.match(m[1]) and m[1] not in nodes, line
            nodes[m[1]] = m[2]
            if m[3]:
                fills[m[1]] = m[3]
        elif m := re.fullmatch(r'    "([^"\\]+)" -> "([^"\\]+)";', line):
            assert m[1] in nodes and m[2] in nodes, f"edge to an undeclared node: {line}"
            edges.add((m[1], m[2]))
        else:
            pytest.fail(f"a line that is no node or edge: {line!r}")
    return nodes, edges, fills


def named(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(node_id(a), node_id(b)) for a, b in edges}


def test_text_draws_every_step_once_by_level_with_kind_and_needs() -> None:
    pipeline = load_pipeline(EXAMPLE)
    text = render_text(pipeline)
    lines = text.splitlines()
    assert lines[0] == "pipeline fraud-ml: 9 steps in 8 levels"
    assert [line for line in lines if "level" in line and line.startswith("─")] == [
        f"── level {k} " + "─" * (60 - len(f"── level {k} ")) for k in range(8)]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.startswith("  ")}
    assert sorted(rows) == sorted(s.id for s in pipeline.steps)  # each step on exactly one line
    assert sum(line.startswith("  ") for line in lines) == 9
    assert rows["gate"] == ["gate", "gate", "←", "evaluate,", "drift"]
    assert rows["drift"] == ["drift", "data_check", "←", "prepare"]
    assert rows["prepare"] == ["prepare", "job"]
    assert text.index("  drift ") < text.index("── level 2") < text.index("  evaluate ")


def test_states_show_as_a_symbol_and_a_word() -> None:
    text = render_text(load_pipeline(EXAMPLE), RUN_STATES)
    row = {line.split()[1]: line.split() for line in text.splitlines() if line.startswith("  ") and
           line.split()[0] != "deploy"}
    assert row["prepare"][:4] == ["✓", "prepare", "job", "succeeded"]
    assert row["train"][:4] == ["↺", "train", "job", "cached"]
    assert row["drift"][:4] == ["✗", "drift", "data_check", "failed"]
    assert row["approve"][:4] == ["⏸", "approve", "approval", "waiting_approval"]
    assert row["promote"][:4] == ["○", "promote", "promote", "pending"]
    deploy = next(line for line in text.splitlines() if " deploy " in line)
    assert deploy.split() == ["deploy", "deploy", "←", "promote"]  # no state given: none drawn


def test_ascii_drawing_uses_only_ascii() -> None:
    text = render_text(load_pipeline(EXAMPLE), RUN_STATES, ascii_only=True)
    assert text.isascii()
    assert "  x drift     data_check  failed            <- prepare\n" in text
    assert "-- level 3 --" in text


def test_the_rich_drawing_has_the_same_text_and_colours_by_state() -> None:
    pipeline = load_pipeline(EXAMPLE)
    drawn = render_rich(pipeline, RUN_STATES)
    assert drawn.plain == render_text(pipeline, RUN_STATES)
    styles = {drawn.plain[span.start:span.end].strip(): str(span.style) for span in drawn.spans}
    assert styles["failed"] == "bold red" and styles["succeeded"] == "green"


def test_unknown_states_and_steps_are_refused_with_what_is_allowed() -> None:
    pipeline = load_pipeline(EXAMPLE)
    with pytest.raises(ValueError, match="'done'; a state is one of pending, running, succeeded"):
        render_text(pipeline, {"train": "done"})
    with pytest.raises(ValueError, match="'trian', which is no step in pipeline 'fraud-ml'"):
        render_mermaid(pipeline, {"trian": "running"})


def test_needs_wrap_at_the_width() -> None:
    steps = tuple(Step(f"upstream_step_{i}", "job") for i in range(12))
    pipeline = Pipeline("wide", (*steps, Step("join", "job", needs=tuple(s.id for s in steps))))
    lines = render_text(pipeline, width=70).splitlines()
    assert all(len(line) <= 70 for line in lines)
    start = next(i for i, line in enumerate(lines) if line.startswith("  join"))
    column = lines[start].index("upstream_step_0")
    listed = " ".join(lines[start][column:].split())
    for line in lines[start + 1:]:
        assert line[:column].strip() == ""
        listed += " " + line.strip()
    assert listed == ", ".join(s.id for s in steps)


def test_mermaid_of_the_example_is_a_well_formed_flowchart_with_state_classes() -> None:
    pipeline = load_pipeline(EXAMPLE)
    nodes, edges, classes = check_mermaid(render_mermaid(pipeline, RUN_STATES))
    assert set(nodes) == {node_id(s.id) for s in pipeline.steps}
    assert edges == named(EDGES)
    assert nodes[node_id("drift")] == "drift<br/>data_check · failed"
    assert nodes[node_id("deploy")] == "deploy<br/>deploy"
    assert classes["succeeded"] == {node_id("prepare"), node_id("evaluate")}
    assert set(classes) == set(RUN_STATES.values()) and set(classes) <= set(STATES)
    assert check_mermaid(render_mermaid(pipeline))[2] == {}  # no states: no classes


def test_dot_of_the_example_is_a_well_formed_digraph_with_state_colours() -> None:
    pipeline = load_pipeline(EXAMPLE)
    nodes, edges, fills = check_dot(render_dot(pipeline, RUN_STATES))
    assert set(nodes) == {node_id(s.id) for s in pipeline.steps}
    assert edges == named(EDGES)
    assert nodes[node_id("gate")] == "<B>gate</B><BR/>gate<BR/>skipped"
    assert fills[node_id("prepare")] == fills[node_id("evaluate")] != fills[node_id("drift")]
    assert node_id("deploy") not in fills


ODD_IDS = ("end", "graph", "node", "subgraph", "a-b", "a_2db", "a__b", "_x", "1st", 'say "hi"', "back\\slash",
           "<b>&amp;</b>", "#35;", "x --> y", "tab\there", "é", "trailing\\")


def odd_pipeline() -> tuple[Pipeline, set[tuple[str, str]]]:
    """A chain through every odd id (made in code: a pipeline file allows fewer characters)."""
    steps = [Step(ODD_IDS[0], "job")] + [Step(i, "job", needs=(ODD_IDS[k],)) for k, i in enumerate(ODD_IDS[1:])]
    return Pipeline("odd-ids", tuple(steps)), {(ODD_IDS[k], ODD_IDS[k + 1]) for k in range(len(ODD_IDS) - 1)}


def test_odd_step_ids_get_distinct_safe_names_and_readable_labels() -> None:
    assert len({node_id(i) for i in ODD_IDS}) == len(ODD_IDS)
    assert node_id("fraud-ml") == "nfraud_2dml" and node_id("a_b") == "na__b" and node_id("é") == "n_c3_a9"
    pipeline, chain = odd_pipeline()
    nodes, edges, _ = check_mermaid(render_mermaid(pipeline))
    assert edges == named(chain)
    assert nodes[node_id('say "hi"')] == "say #quot;hi#quot;<br/>job"
    assert nodes[node_id("<b>&amp;</b>")] == "#lt;b#gt;#amp;amp;#lt;/b#gt;<br/>job"
    assert nodes[node_id("#35;")] == "#35;35;<br/>job"
    nodes, edges, _ = check_dot(render_dot(pipeline))
    assert edges == named(chain)
    assert nodes[node_id("<b>&amp;</b>")] == "<B>&lt;b&gt;&amp;amp;&lt;/b&gt;</B><BR/>job"
    text = render_text(pipeline)
    assert all(f"  {i}" in text for i in ODD_IDS) and text.count("\n  ") == len(ODD_IDS)


def test_loaded_ids_with_dashes_and_keywords_draw_in_every_format() -> None:
    pipeline = load_pipeline("name: p\nsteps:\n  - {id: end, command: a}\n  - {id: _x-y, needs: [end], command: b}\n"
                             "  - {id: x-y, needs: [end, _x-y], command: c}\n")
    assert check_mermaid(render_mermaid(pipeline))[1] == named({("end", "_x-y"), ("end", "x-y"), ("_x-y", "x-y")})
    assert check_dot(render_dot(pipeline))[1] == named({("end", "_x-y"), ("end", "x-y"), ("_x-y", "x-y")})
    assert "  x-y   job  ← end, _x-y\n" in render_text(pipeline)


def test_a_generated_thousand_step_dag_draws_in_every_format() -> None:
    spec = importlib.util.spec_from_file_location("bench_pipelines", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    pipeline = load_pipeline(bench.generated_pipeline(1000, seed=3))
    states = {s.id: STATES[i % len(STATES)] for i, s in enumerate(pipeline.steps)}
    text = render_text(pipeline, states, width=80)
    assert sum(line.startswith("  ") and line.split()[1].startswith("s") for line in text.splitlines()) == 1000
    all_edges = {(need, s.id) for s in pipeline.steps for need in s.needs}
    assert check_mermaid(render_mermaid(pipeline, states))[1] == named(all_edges)
    assert check_dot(render_dot(pipeline, states))[1] == named(all_edges)


def test_cli_show_draws_the_file_in_each_format() -> None:
    runner = CliRunner(env={"COLUMNS": "80"})  # rich reads the width from COLUMNS when not a terminal
    text = runner.invoke(cli, ["pipelines", "show", str(EXAMPLE)])
    assert text.exit_code == 0, text.output
    assert text.output == render_text(load_pipeline(EXAMPLE), width=80)  # not a terminal: no colour codes
    plain = runner.invoke(cli, ["pipelines", "show", str(EXAMPLE), "--ascii"])
    assert plain.output.isascii() and "<- evaluate, drift" in plain.output
    mermaid = runner.invoke(cli, ["pipelines", "show", str(EXAMPLE), "--format", "mermaid"])
    assert check_mermaid(mermaid.output)[1] == named(EDGES)
    dot = runner.invoke(cli, ["pipelines", "show", str(EXAMPLE), "--format", "dot"])
    assert check_dot(dot.output)[1] == named(EDGES)


def test_cli_show_falls_back_to_ascii_where_the_output_cannot_encode_the_symbols() -> None:
    result = CliRunner(charset="ascii", env={"COLUMNS": "80"}).invoke(cli, ["pipelines", "show", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.output == render_text(load_pipeline(EXAMPLE), width=80, ascii_only=True)


def test_cli_show_json_gives_steps_levels_and_the_drawing() -> None:
    for args in (["--json", "pipelines", "show", str(EXAMPLE), "--format", "dot"],
                 ["pipelines", "show", str(EXAMPLE), "--format", "dot", "--json"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        answer = json.loads(result.output)
        assert answer["name"] == "fraud-ml" and answer["format"] == "dot" and len(answer["levels"]) == 8
        assert answer["steps"][4] == {"id": "gate", "kind": "gate", "needs": ["evaluate", "drift"], "level": 3,
                                      "state": None}
        assert answer["drawing"] == render_dot(load_pipeline(EXAMPLE))


def test_cli_show_reports_an_invalid_or_missing_file_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "pipeline.yaml"
    bad.write_text("name: p\nsteps:\n  - id: a\n    needs: [b]\n    command: run\n")
    result = CliRunner().invoke(cli, ["pipelines", "show", str(bad)])
    assert result.exit_code == 1
    assert result.output == f"{bad}:4:13: step 'a' needs 'b', which is no step in this pipeline\n"
    missing = CliRunner().invoke(cli, ["pipelines", "show", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1 and "cannot read the file" in missing.output
    wrong = CliRunner().invoke(cli, ["pipelines", "show", str(EXAMPLE), "--format", "png"])
    assert wrong.exit_code == 2 and "'png' is not one of 'text', 'mermaid', 'dot'" in wrong.output


def test_cli_show_help_has_an_example_that_runs() -> None:
    result = CliRunner().invoke(cli, ["pipelines", "show", "--help"])
    assert result.exit_code == 0 and "pipeline run id" in result.output
    example = next(line.strip() for line in result.output.splitlines() if line.strip().startswith("Example:"))
    args = example.removeprefix("Example: cairn ").split()
    args[2] = str(EXAMPLE)
    run = CliRunner().invoke(cli, args)
    assert run.exit_code == 0 and run.output.startswith("flowchart TD\n")
