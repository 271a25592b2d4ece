"""Every page of the app under the gateway's real Content-Security-Policy (services/gateway/webui.py).

The other browser modules open their contexts with ``bypass_csp`` (they inject axe-core), so
only this one shows the app itself keeps to the policy: scripts, styles and connections from its
own origin only, no inline script or style. A context that keeps the policy signs in and loads
each page route of ui/src/lib/router.ts afresh for one seeded project (two runs with a metric, a
model with a version, a dataset, a sweep with one queued trial job, a pipeline run waiting for
approval); an init script records every ``securitypolicyviolation`` event on ``window``, and the
page's console errors, uncaught errors and failed requests are collected. Any of them fails the
test, naming the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_driver import BROWSER_TEST, open_context, sign_in
from up_driver import Up, wait

import cairn

from model_helpers import push_model

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = BROWSER_TEST

PROJECT = "csp-check"
T = 30_000
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""
PIPELINE = """\
name: csp
steps:
  - id: approve
    approval: {role: admin}
"""


def _seed(client: cairn.Client, http: httpx.Client, tmp_path: Path) -> dict[str, str]:
    """What the pages read, so each draws its real content (tables, charts, the DAG), not an empty state."""
    runs = []
    for name, lr in (("first", "0.1"), ("second", "0.2")):
        run = cairn.start_run(project=PROJECT, name=name, params={"lr": lr}, client=client,
                              system_metrics=False, record_environment=False)
        for i in range(20):
            run.log_metric("loss", 1.0 / (1 + i) + float(lr), step=i, timestamp=1_700_000_000.0 + i)
        run.flush()
        run.finish()
        # a reproducibility record, so the run page has every section (none is a 404 it shows as such)
        client.record_run_environment(PROJECT, run.id, environment={"python": {"version": "3.12.4"}, "packages": []},
                                      command=["train.py"], seeds={"seed": 1})
        runs.append(run.id)
    data = tmp_path / "rows"
    data.mkdir()
    (data / "train.csv").write_text("x,y\n1,2\n3,4\n")
    client.artifacts.push_dataset(PROJECT, "rows", data)
    http.post(f"/registry/projects/{PROJECT}/models", json={"name": "scorer"}).raise_for_status()
    http.post(f"/registry/projects/{PROJECT}/models/scorer/versions",
              json={"run_id": runs[0], "artifact_digest": push_model(http, PROJECT)}).raise_for_status()
    # a sweep whose one trial waits on a queue no agent serves: a sweep page and a (queued) job page
    sweep = http.post(f"/scheduler/projects/{PROJECT}/sweeps", json={
        "name": "lr", "method": "random", "seed": 1, "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"lr": {"type": "float", "min": 1e-4, "max": 0.1}}, "max_parallel": 1,
        "budget": {"max_trials": 1}, "job": {"command": "python train.py", "queue": "csp-nobody"}}).raise_for_status().json()
    sweep_url = f"/scheduler/projects/{PROJECT}/sweeps/{sweep['id']}"
    wait(lambda: bool([t for t in http.get(sweep_url).json()["trials"] if t.get("job_id")]), 30, "the sweep's trial job")
    job_id = next(t["job_id"] for t in http.get(sweep_url).json()["trials"] if t.get("job_id"))
    pipeline_run = http.post(f"/pipelines/projects/{PROJECT}/runs", json={"pipeline": PIPELINE}).raise_for_status().json()["id"]
    summary = f"/metrics/projects/{PROJECT}/runs/{runs[1]}/metrics/summary"
    wait(lambda: any(s["key"] == "loss" and s["count"] == 20 for s in http.get(summary).json()["summaries"]),
         30, "the second run's metrics summarised")
    return {"run": runs[0], "other": runs[1], "pipeline_run": pipeline_run, "sweep": sweep["id"], "job": job_id}


def test_every_page_keeps_to_the_csp(up: Up, pw: Any, tmp_path: Path) -> None:
    admin_token = (up.data_dir / "admin.token").read_text().strip()
    client = cairn.Client(up.url, token=admin_token)
    client.ensure_project(PROJECT)
    http = httpx.Client(base_url=f"{up.url}/api/v1", headers={"Authorization": f"Bearer {admin_token}"}, timeout=30)
    seeded = _seed(client, http, tmp_path)
    p = f"/projects/{PROJECT}"
    # each route with what shows once its data has loaded
    routes = [
        (f"{p}/runs", 'main >> text="second"'),
        (f"{p}/runs/{seeded['run']}", "canvas"),
        (f"{p}/compare?runs={seeded['run']},{seeded['other']}", "canvas"),
        (f"{p}/models", 'main >> text="scorer"'),
        (f"{p}/models/scorer", "table >> text=1"),
        (f"{p}/datasets", 'main >> text="rows"'),
        (f"{p}/datasets/rows", "text=train.csv"),
        (f"{p}/experiments", 'main >> text="default"'),
        (f"{p}/jobs", "p.count"),
        (f"{p}/jobs/{seeded['job']}", "text=queued"),
        (f"{p}/sweeps", 'main >> text="lr"'),
        (f"{p}/sweeps/{seeded['sweep']}", f"text={seeded['job']}"),
        (f"{p}/pipelines", f"text={seeded['pipeline_run']}"),
        (f"{p}/pipelines/{seeded['pipeline_run']}", "li.dag-step"),
        (f"{p}/deployments", "main h1"),
        (f"{p}/members", "main h1"),
        (f"{p}/webhooks", "main h1"),
        ("/agents", "main h1"),
        ("/audit", "table tbody tr"),
        ("/tokens", "table tbody tr"),
    ]
    context = open_context(pw, tmp_path / "csp-profile", bypass_csp=False)
    problems: list[str] = []
    try:
        context.add_init_script(RECORD_VIOLATIONS)
        page = context.new_page()
        where = {"page": "sign-in"}
        page.on("console", lambda m: problems.append(f"{where['page']}: console {m.type}: {m.text}")
                if m.type == "error" else None)
        page.on("response", lambda r: problems.append(f"{where['page']}: {r.status} from {r.url}") if r.status >= 400 else None)
        page.on("pageerror", lambda e: problems.append(f"{where['page']}: uncaught {e}"))
        sign_in(page, up.url, admin_token)
        assert page.evaluate("window.__cspViolations") == []
        # the sign-in page's one 401 is the app asking who is signed in before anyone is: expected
        assert all("401" in x for x in problems), problems
        problems.clear()
        # the policy is in force and the recorder hears it: an inline style is refused
        with page.expect_console_message(lambda m: "Content Security Policy" in m.text, timeout=T):
            page.evaluate("document.head.insertAdjacentHTML('beforeend', '<style>main { color: red }</style>')")
        page.wait_for_function("window.__cspViolations.some((v) => v.startsWith('style-src'))", timeout=T)
        page.evaluate("window.__cspViolations.length = 0")
        assert all("Content Security Policy" in x for x in problems), problems
        problems.clear()
        for path, ready in routes:
            where["page"] = path
            page.goto(f"{up.url}{path}")
            page.locator("main h1").first.wait_for(timeout=T)
            try:
                page.locator(ready).first.wait_for(timeout=T)
            except playwright_api.TimeoutError:  # say what the page showed and what went wrong so far
                raise AssertionError(f"{path} never showed {ready!r}; problems: {problems}; page: "
                                     f"{page.locator('main').inner_text()[:500]!r}") from None
            page.wait_for_function("() => !document.body.innerText.includes('Loading…')", timeout=T)
            assert page.locator("main", has_text="No page at").count() == 0, f"{path} is not a route"
            problems += [f"{path}: {v}" for v in page.evaluate("window.__cspViolations")]
        assert not problems, "\n".join(problems)
    finally:
        context.close()
        http.post(f"/scheduler/projects/{PROJECT}/sweeps/{seeded['sweep']}/stop", json={})  # its job leaves the queue
        http.close()
        client.close()
