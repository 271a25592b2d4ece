"""The notebook lookup against a live Jupyter server: a real ``python -m jupyter_server`` (loopback,
a free port, a token, a base URL, its own root, runtime, config and data folders) starts a notebook's
kernel through its sessions REST API, as JupyterLab does; the test then drives that kernel with
jupyter_client, as the front end would, and checks what ``cairn.start_run`` records as the run's
code: the server's session hint, the sessions API once the hints are gone (found through the
server's ``jpserver-*.json`` runtime file and its token), and the kernel's history for a kernel
that no session of the server lists."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking import BlockingKernelClient

from cairn.sdk.client import Client
from cairn.sdk.code_snapshot import read_snapshot

from platform_harness import Platform

PROJECT = f"nbs{os.getpid() % 100000}"
TOKEN = "jp-token-5c1e9a7b2d"  # the server's token: the kernel reads it from the runtime file only
START_TIMEOUT_S = 120.0


@dataclass
class Server:
    """A running Jupyter server: its process, runtime file's contents and folders."""

    process: subprocess.Popen[bytes]
    info: dict[str, Any]
    runtime: Path
    root: Path
    log: Path

    def api(self, method: str, path: str, body: dict[str, Any] | None = None, *, token: str | None = TOKEN) -> Any:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"token {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.info["url"].rstrip("/") + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (the test's loopback server)
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError:
            raise
        except urllib.error.URLError as err:  # the server is gone: say why
            raise AssertionError(f"{method} {path}: {err}; server exit {self.process.poll()}\n"
                                 f"{self.info}\n{self.log.read_text()}") from err


def _wait_until_serving(process: subprocess.Popen[bytes], runtime: Path, log: Path) -> dict[str, Any]:
    """The server's ``jpserver-<pid>.json`` once the server answers at its URL. Jupyter Server 2.x
    writes that file before its event loop binds the port, so the file alone does not mean ready."""
    info_file = runtime / f"jpserver-{process.pid}.json"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"jupyter server exited {process.returncode}:\n{log.read_text()}")
        try:
            info = dict(json.loads(info_file.read_text()))
            status = urllib.request.Request(info["url"].rstrip("/") + "/api/status",
                                            headers={"Authorization": f"token {TOKEN}"})
            with urllib.request.urlopen(status, timeout=10):  # noqa: S310 (the test's loopback server)
                return info
        except (OSError, ValueError, KeyError):
            time.sleep(0.1)  # polled under a deadline
    raise AssertionError(f"{info_file.name} not written or not served within {START_TIMEOUT_S} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One Jupyter server for the module; its kernels inherit its environment (the test platform's
    URL and token), never the user's Jupyter folders."""
    base = tmp_path_factory.mktemp("jupyter")
    root, runtime = base / "root", base / "runtime"
    for folder in (root / "work", runtime, base / "config", base / "data", base / "ipython"):
        folder.mkdir(parents=True)
    env = {**os.environ, "CAIRN_URL": platform.gateway, "CAIRN_TOKEN": platform.token, "CAIRN_SYSTEM_METRICS": "0",
           "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(base / "config"),
           "JUPYTER_DATA_DIR": str(base / "data"), "IPYTHONDIR": str(base / "ipython")}
    for name in ("CAIRN_RUN_ID", "CAIRN_PROJECT", "CAIRN_NOTEBOOK_OUTPUTS", "JPY_SESSION_NAME", "JUPYTER_TOKEN"):
        env.pop(name, None)
    log = base / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0",
             "--ServerApp.port_retries=0", "--ServerApp.base_url=/jp/", f"--IdentityProvider.token={TOKEN}",
             f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
             "--ServerApp.terminals_enabled=False", "--allow-root"],  # root in CI containers
            env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield Server(process, _wait_until_serving(process, runtime, log), runtime, root, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _connect(server: Server, kernel_id: str) -> BlockingKernelClient:
    """A client on the server's kernel through its connection file, as a second front end connects."""
    kc = BlockingKernelClient(connection_file=str(server.runtime / f"kernel-{kernel_id}.json"))
    kc.load_connection_file()
    kc.start_channels(hb=False)  # the server watches the kernel; a fresh heartbeat can read as dead under load
    kc.wait_for_ready(timeout=START_TIMEOUT_S)
    return kc


def _run(kc: BlockingKernelClient, code: str) -> str:
    """Execute one cell; its stdout, or an AssertionError naming the cell's error."""
    messages: list[dict[str, Any]] = []
    reply = kc.execute_interactive(code, timeout=120, output_hook=messages.append, stop_on_error=True)
    if reply["content"]["status"] != "ok":
        raise AssertionError(f"cell failed: {reply['content'].get('ename')}: {reply['content'].get('evalue')}\n{code}")
    return "".join(m["content"]["text"] for m in messages
                   if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")


def _notebook() -> dict[str, Any]:
    """The notebook as saved by its author, with an output of the last session."""
    def code(source: str, outputs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"cell_type": "code", "execution_count": 1 if outputs else None, "id": f"c{len(source)}",
                "metadata": {}, "outputs": outputs, "source": source}
    printed = {"output_type": "stream", "name": "stdout", "text": ["loss 0.25\n"]}
    return {"cells": [{"cell_type": "markdown", "id": "m1", "metadata": {}, "source": "# Served"},
                      code("import cairn\nlr = 0.5\nprint('loss', lr / 2)", [printed])],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


START = "with cairn.start_run({project!r}, name={name!r}) as run:\n    pass\nprint(run.id)"
PROXIED = ("import urllib.request\nfrom cairn.sdk.notebook import _server_notebook\n"
           "os.environ['http_proxy'] = 'http://127.0.0.1:9'  # nothing listens there\n"
           "urllib.request.install_opener(None)  # as in a kernel started with $http_proxy set\n"
           "try:\n    print(_server_notebook())\nfinally:\n    del os.environ['http_proxy']")
STALE = "jpserver-0.json"  # sorted before the live server's file: a server that is gone
WRONG_TOKEN = "jpserver-00.json"  # the live server's URL with a token it refuses
REDIRECTING = "jpserver-000.json"  # a loopback server that redirects the lookup elsewhere


class _Listener(http.server.ThreadingHTTPServer):
    """A loopback HTTP server that notes the Authorization header of each request and answers 302
    to ``redirect_to`` (or 404)."""

    def __init__(self, redirect_to: str | None) -> None:
        self.redirect_to = redirect_to
        self.seen: list[str | None] = []
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Listener

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.seen.append(self.headers.get("Authorization"))
        self.send_response(302 if self.server.redirect_to else 404)
        if self.server.redirect_to:
            self.send_header("Location", self.server.redirect_to + "api/sessions")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _listener(redirect_to: str | None = None) -> Iterator[_Listener]:
    listener = _Listener(redirect_to)
    thread = threading.Thread(target=listener.serve_forever, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        listener.shutdown()
        listener.server_close()
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def runs(server: Server) -> dict[str, Any]:
    """Runs started in the notebook's kernel (as the server started it), with and without its hints,
    then in a kernel of the same server that no session lists."""
    (server.root / "work" / "train.ipynb").write_text(json.dumps(_notebook()))
    session = server.api("POST", "/api/sessions", {"path": "work/train.ipynb", "name": "train.ipynb",
                                                   "type": "notebook", "kernel": {"name": "python3"}})
    found: dict[str, Any] = {"session": session}
    kc = _connect(server, session["kernel"]["id"])
    try:
        for cell in _notebook()["cells"][1:]:  # "Run all", then a cell that starts the run
            _run(kc, cell["source"])
        found["hints"] = json.loads(_run(kc, "import json, os\nprint(json.dumps([__session__, os.environ['JPY_SESSION_NAME']]))"))
        found["session_hint"] = _run(kc, START.format(project=PROJECT, name="hinted")).strip()
        _run(kc, "del __session__\nos.environ.pop('JPY_SESSION_NAME')")
        found["jupyter_server"] = _run(kc, START.format(project=PROJECT, name="served")).strip()
        # A proxy of the user's environment is never given the server's token (nor asked).
        found["proxied"] = _run(kc, PROXIED).strip()
        # A gone server's file and one with a wrong token come first; the lookup goes past both.
        (server.runtime / STALE).write_text(json.dumps({**server.info, "url": "http://127.0.0.1:9/jp/", "pid": 0}))
        (server.runtime / WRONG_TOKEN).write_text(json.dumps({**server.info, "token": "not-" + TOKEN}))
        with _listener() as elsewhere, _listener(redirect_to=elsewhere.url) as redirecting:
            (server.runtime / REDIRECTING).write_text(json.dumps({**server.info, "url": redirecting.url}))
            try:
                found["past_stale"] = _run(kc, START.format(project=PROJECT, name="past-stale")).strip()
            finally:
                for name in (STALE, WRONG_TOKEN, REDIRECTING):
                    (server.runtime / name).unlink()
            found["redirected"], found["followed"] = redirecting.seen, elsewhere.seen
    finally:
        kc.stop_channels()
    lone = server.api("POST", "/api/kernels", {"name": "python3"})  # running on the server, in no session
    kc = _connect(server, lone["id"])
    try:
        found["lone_hints"] = _run(kc, "import os\nprint('__session__' in globals(), 'JPY_SESSION_NAME' in os.environ)")
        _run(kc, "import cairn\nhistory_lr = 0.125")
        found["history"] = _run(kc, START.format(project=PROJECT, name="lone")).strip()
    finally:
        kc.stop_channels()
    return found


def _code(client: Client, run_id: str, tmp_path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    code = client.get_run_environment(PROJECT, run_id)["code"]
    return code, read_snapshot(client.artifacts.download_blob(code["archive_digest"], tmp_path / f"{run_id}.tar.gz"))


def test_the_live_servers_session_hint_names_the_notebook(server: Server, runs: dict[str, Any],
                                                          client: Client, tmp_path: Path) -> None:
    notebook = server.root / "work" / "train.ipynb"
    assert runs["session"]["path"] == "work/train.ipynb"
    assert [Path(hint).resolve() for hint in runs["hints"]] == [notebook.resolve()] * 2
    code, files = _code(client, runs["session_hint"], tmp_path)
    assert code["notebook"]["found_by"] == "session_hint" and list(files) == ["train.ipynb"]


def test_without_hints_the_sessions_api_of_the_live_server_finds_the_notebook_outputs_stripped(
        runs: dict[str, Any], client: Client, tmp_path: Path) -> None:
    code, files = _code(client, runs["jupyter_server"], tmp_path)
    assert code["kind"] == "notebook"
    assert code["notebook"] == {"found_by": "jupyter_server", "name": "train.ipynb", "cells": 2, "outputs_kept": False}
    stored = json.loads(files["train.ipynb"])
    assert [c["source"] for c in stored["cells"]] == [c["source"] for c in _notebook()["cells"]]
    assert stored["cells"][1]["outputs"] == [] and stored["cells"][1]["execution_count"] is None
    assert b"loss 0.25" not in files["train.ipynb"]


def test_the_server_requires_the_token_that_its_runtime_file_carries(server: Server, runs: dict[str, Any],
                                                                     client: Client, tmp_path: Path) -> None:
    assert server.info["token"] == TOKEN and server.info["url"].endswith("/jp/")
    with pytest.raises(urllib.error.HTTPError) as refused:
        server.api("GET", "/api/sessions", token=None)
    assert refused.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as wrong:
        server.api("GET", "/api/sessions", token="not-" + TOKEN)
    assert wrong.value.code == 403
    kernel_ids = [s["kernel"]["id"] for s in server.api("GET", "/api/sessions")]
    assert runs["session"]["kernel"]["id"] in kernel_ids
    assert Path(runs["proxied"]) == (server.root / "work" / "train.ipynb").resolve()
    assert runs["redirected"] == [f"token {TOKEN}"] and runs["followed"] == []  # a redirect is not followed
    code, _ = _code(client, runs["past_stale"], tmp_path)  # a gone server and a refused token are skipped
    assert code["notebook"]["found_by"] == "jupyter_server" and code["notebook"]["name"] == "train.ipynb"


def test_a_kernel_that_no_session_of_the_server_lists_records_its_history(runs: dict[str, Any], client: Client,
                                                                          tmp_path: Path) -> None:
    assert runs["lone_hints"].split() == ["False", "False"]
    code, files = _code(client, runs["history"], tmp_path)
    assert code["kind"] == "notebook" and code["notebook"]["found_by"] == "history"
    cells = [c["source"] for c in json.loads(files["notebook.ipynb"])["cells"]]
    assert "import cairn\nhistory_lr = 0.125" in cells
    assert cells[-1].startswith("with cairn.start_run(") and "name='lone'" in cells[-1]
