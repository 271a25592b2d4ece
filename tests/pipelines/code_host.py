"""A code host on loopback for the pipelines tests: the ``post-receive`` hook a bare git
repository runs to post GitHub- or GitLab-format push events (signed with the hook's secret) to the
gateway's open hook route, and the commit-status API the pipelines service reports back to.

The hook reads ``hook.json`` (``url``, ``format``: github|gitlab, ``secret``, ``full_name``,
``clone_url``) from the path written into it, and prints ``HOOK <status> <answer>`` so the pusher
sees what the gateway said."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

POST_RECEIVE = """#!{python}
import hashlib, hmac, json, subprocess, sys, urllib.request
conf = json.load(open({conf!r}))
for line in sys.stdin:
    old, new, ref = line.split()
    if old == "0" * 40:
        names = subprocess.run(["git", "ls-tree", "-r", "--name-only", new], capture_output=True, text=True).stdout
    else:
        names = subprocess.run(["git", "diff", "--name-only", old, new], capture_output=True, text=True).stdout
    paths = names.split()
    if conf["format"] == "github":
        payload = {{"ref": ref, "before": old, "after": new, "head_commit": {{"id": new}},
                   "repository": {{"full_name": conf["full_name"], "clone_url": conf["clone_url"]}},
                   "pusher": {{"name": "dev"}}, "commits": [{{"id": new, "added": [], "modified": paths,
                                                             "removed": []}}]}}
        body = json.dumps(payload).encode()
        key = conf["secret"].encode()
        headers = {{"X-GitHub-Event": "push", "X-GitHub-Delivery": new,
                   "X-Hub-Signature-256": "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()}}
    else:
        payload = {{"ref": ref, "before": old, "after": new, "checkout_sha": new, "user_username": "dev",
                   "project": {{"path_with_namespace": conf["full_name"], "git_http_url": conf["clone_url"]}},
                   "commits": [{{"id": new, "added": [], "modified": paths, "removed": []}}]}}
        body = json.dumps(payload).encode()
        headers = {{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": conf["secret"]}}
    request = urllib.request.Request(conf["url"], data=body, method="POST",
                                     headers={{**headers, "Content-Type": "application/json"}})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read().decode()
    print("HOOK", status, text.replace("\\n", " "))
"""


class StatusReceiver:
    """A code host's status API on 127.0.0.1: records every POST (path, headers, body)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        calls = self.calls

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                calls.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def statuses(self, sha: str) -> list[dict[str, Any]]:
        """The status bodies posted for commit ``sha``, in order."""
        return [c["body"] for c in self.calls if c["path"].rstrip("/").endswith(sha)]
