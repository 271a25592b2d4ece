"""MLflow 3 tracing against Cairn with the real MLflow client: spans logged over OTLP and trace
info by StartTraceV3 (``mlflow.start_span``), read back whole (``get_trace``), searched with
MLflow's filter syntax, tagged, linked to runs, deleted, and the trace artifact; plus the v2
legacy start/end. Each test works in a project of its own (``/mlflow/<project>`` URIs)."""

from __future__ import annotations

import httpx
import pytest
from conftest import RunMlflow

from platform_harness import Platform

pytestmark = pytest.mark.shared_stack  # see tests/conftest.py


def test_start_span_is_stored_with_its_spans_and_reads_back(run_mlflow: RunMlflow, platform: Platform,
                                                            project: str) -> None:
    result = run_mlflow("""
        import json, mlflow
        from mlflow import MlflowClient
        from mlflow.entities import SpanEvent
        exp = mlflow.set_experiment("agents").experiment_id
        with mlflow.start_span(name="root") as root:
            root.set_inputs({"q": "what is a cairn?"})
            mlflow.update_current_trace(tags={"team": "nlp"}, metadata={"meta1": "apple"})
            with mlflow.start_span(name="child") as child:
                child.set_attributes({"fruit": "apple"})
                child.add_event(SpanEvent("looked_up", timestamp=99999, attributes={"k": "v"}))
            root.set_outputs("a stack of stones")
        mlflow.flush_trace_async_logging()
        client = MlflowClient()
        trace = client.get_trace(root.trace_id)
        print(json.dumps({"exp": exp, "trace_id": root.trace_id, "info_id": trace.info.trace_id,
                          "state": str(trace.info.state), "experiment": trace.info.experiment_id,
                          "tags": trace.info.tags, "metadata": trace.info.trace_metadata,
                          "request_preview": trace.info.request_preview,
                          "spans": sorted(s.name for s in trace.data.spans),
                          "child": [s.to_dict() for s in trace.data.spans if s.name == "child"][0],
                          "sent_child": child.to_dict()}))
    """, uri=f"{platform.gateway}/mlflow/{project}")
    r = result.result
    assert r["info_id"] == r["trace_id"] and r["experiment"] == r["exp"]
    assert r["state"].endswith("OK")
    assert r["tags"]["team"] == "nlp" and r["metadata"]["meta1"] == "apple"
    assert "cairn" in (r["request_preview"] or "")
    assert r["spans"] == ["child", "root"]
    assert r["child"] == r["sent_child"]  # attributes and events survive OTLP, Parquet and batchGet

    artifact = httpx.get(f"{platform.gateway}/mlflow/{project}/ajax-api/2.0/mlflow/get-trace-artifact",
                         params={"request_id": r["trace_id"]}, headers=platform.headers, timeout=30)
    assert artifact.status_code == 200, artifact.text
    assert artifact.headers["content-disposition"] == "attachment; filename=traces.json"
    assert [s for s in artifact.json()["spans"] if s["name"] == "child"][0] == r["sent_child"]


def test_search_tags_links_and_deletes(run_mlflow: RunMlflow, platform: Platform, project: str) -> None:
    result = run_mlflow("""
        import json, time, mlflow
        from mlflow import MlflowClient
        from mlflow.entities.trace_status import TraceStatus
        client = MlflowClient()
        exp = client.create_experiment("search")
        def make(name, status, tags=None):
            # each trace starts in a millisecond of its own: the order asserted below is by start
            # time, and two traces of the same millisecond tie (wait for the clock, not a sleep)
            started = time.time_ns() // 1_000_000
            while time.time_ns() // 1_000_000 <= started:
                pass
            span = client.start_trace(name=name, experiment_id=exp, tags=tags or {})
            client.end_trace(request_id=span.trace_id, status=status)
            return span.trace_id
        t1, t2 = make("one", TraceStatus.OK, {"env": "prod"}), make("two", TraceStatus.OK, {"env": "dev"})
        t3 = make("three", TraceStatus.ERROR, {"env": "prod"})
        mlflow.flush_trace_async_logging()  # newer clients export traces in the background
        ids = lambda traces: [t.info.trace_id for t in traces]
        out = {"t": [t1, t2, t3]}
        out["all"] = ids(client.search_traces(experiment_ids=[exp]))
        out["ok_asc"] = ids(client.search_traces(experiment_ids=[exp], filter_string="status = 'OK'",
                                                 order_by=["timestamp ASC"]))
        page = client.search_traces(experiment_ids=[exp], max_results=2)
        out["page1"], out["page2"] = ids(page), ids(client.search_traces(experiment_ids=[exp], page_token=page.token))
        out["prod"] = ids(client.search_traces(experiment_ids=[exp], filter_string="tags.env = 'prod'"))
        out["text"] = ids(client.search_traces(experiment_ids=[exp], filter_string="trace.text LIKE '%thre%'"))
        client.set_trace_tag(t1, "reviewed", "yes")
        client.delete_trace_tag(t1, "env")
        out["t1_tags"] = client.get_trace(t1).info.tags
        run = client.create_run(exp).info.run_id
        client.link_traces_to_run(trace_ids=[t2], run_id=run)
        out["linked"] = ids(client.search_traces(experiment_ids=[exp], filter_string=f"attribute.run_id = '{run}'"))
        try:
            client.search_traces(experiment_ids=[exp], filter_string="nonsense.key = 'x'")
        except Exception as err:
            out["bad_filter"] = str(err)
        out["deleted"] = client.delete_traces(exp, trace_ids=[t3])
        out["after_delete"] = ids(client.search_traces(experiment_ids=[exp]))
        print(json.dumps(out))
    """, uri=f"{platform.gateway}/mlflow/{project}")
    r = result.result
    t1, t2, t3 = r["t"]
    assert r["all"] == [t3, t2, t1]
    assert r["ok_asc"] == [t1, t2]
    assert r["page1"] == [t3, t2] and r["page2"] == [t1]
    assert r["prod"] == [t3, t1]
    assert r["text"] == [t3]
    assert r["t1_tags"]["reviewed"] == "yes" and "env" not in r["t1_tags"]
    assert r["linked"] == [t2]
    assert "Invalid" in r["bad_filter"]
    assert r["deleted"] == 1 and r["after_delete"] == [t2, t1]


def test_legacy_v2_start_and_end_merge_metadata_and_tags(run_mlflow: RunMlflow, platform: Platform,
                                                         project: str) -> None:
    result = run_mlflow("""
        import json
        from mlflow import MlflowClient
        from mlflow.entities.trace_status import TraceStatus
        client = MlflowClient()
        exp = client.create_experiment("legacy")
        store = client._tracing_client.store
        info = store.deprecated_start_trace_v2(experiment_id=exp, timestamp_ms=1000,
                                               request_metadata={"m1": "a", "m2": "b"}, tags={"t1": "x"})
        ended = store.deprecated_end_trace_v2(request_id=info.request_id, timestamp_ms=3000, status=TraceStatus.OK,
                                              request_metadata={"m1": "c"}, tags={"t2": "y"})
        print(json.dumps({"exp": exp, "start_status": str(info.status), "experiment": ended.experiment_id,
                          "ts": ended.timestamp_ms, "ms": ended.execution_time_ms, "status": str(ended.status),
                          "meta": ended.request_metadata,
                          "tags": {k: v for k, v in ended.tags.items() if not k.startswith("mlflow.")}}))
    """, uri=f"{platform.gateway}/mlflow/{project}")
    r = result.result
    assert r["start_status"].endswith("IN_PROGRESS")
    assert r["experiment"] == r["exp"] and r["ts"] == 1000 and r["ms"] == 2000 and r["status"].endswith("OK")
    assert r["meta"] == {"m1": "c", "m2": "b"} and r["tags"] == {"t1": "x", "t2": "y"}
