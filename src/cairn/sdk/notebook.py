"""A notebook as a run's code: what ``cairn.start_run()`` records when it runs inside Jupyter
(ipykernel) or IPython.

A run started from a notebook has no script and often no git work tree; its code is the notebook.
The kernel looks for the ``.ipynb`` file in this order:

1. ``session_hint``: the ``__session__`` global or ``$JPY_SESSION_NAME`` that Jupyter Server gives
   a kernel it starts for a notebook, or VS Code's ``__vsc_ipynb_file__`` (the notebook's path;
   the file as last saved);
2. ``jupyter_server``: the sessions API of a Jupyter server on loopback (found through its runtime
   files), matched by this kernel's id;
3. ``history``: otherwise, the cells this kernel executed, in order, from IPython's history (the
   code that actually ran, e.g. in a terminal IPython or a notebook the kernel cannot find).

The notebook becomes a deterministic archive holding one ``.ipynb`` (outputs and execution counts
stripped by default, so the same cells always give the same digest), stored like any code snapshot
(:mod:`cairn.sdk.code_snapshot`) with ``kind: notebook`` and how it was found in the record. Kept
outputs (``start_run(notebook_outputs=True)`` or ``CAIRN_NOTEBOOK_OUTPUTS=1``) are scrubbed of
secrets first (:mod:`cairn.sdk.notebook_secrets`). This module imports nothing from IPython unless
IPython is already running, so ``import cairn`` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cairn.core import fingerprint_file
from cairn.protocol import NOTEBOOK_CODE_KIND, NOTEBOOK_OUTPUTS_ENV
from cairn.sdk.code_snapshot import CodeSnapshot, _write_archive
from cairn.sdk.notebook_secrets import scrub_output

HISTORY_NAME = "notebook.ipynb"  # the archive's file when the cells came from the kernel's history
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
SERVER_TIMEOUT_S = 2.0


def ipython_shell() -> Any | None:
    """The running IPython shell (a Jupyter kernel's or a terminal's), or None: never imports IPython."""
    module = sys.modules.get("IPython")
    if module is None:
        return None
    try:
        return module.get_ipython()
    except Exception:  # an IPython half imported or torn down: not a notebook
        return None


def keep_outputs(flag: bool | None = None) -> bool:
    """``flag`` when given, else ``$CAIRN_NOTEBOOK_OUTPUTS`` (outputs are stripped unless 1/true/yes/on)."""
    if flag is not None:
        return flag
    return os.environ.get(NOTEBOOK_OUTPUTS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _session_hint(shell: Any) -> Path | None:
    """The notebook named by the kernel's hints: Jupyter Server's ``__session__``/``$JPY_SESSION_NAME``
    (an absolute path, or one relative to the server's root: then the kernel's folder holds its
    file) or VS Code's ``__vsc_ipynb_file__``."""
    hints = (shell.user_ns.get("__session__"), os.environ.get("JPY_SESSION_NAME"),
             shell.user_ns.get("__vsc_ipynb_file__"))
    for hint in hints:
        if isinstance(hint, str) and hint.endswith(".ipynb"):
            path = Path(hint).expanduser()
            for candidate in (path, Path.cwd() / path.name):
                if candidate.is_file():
                    return candidate.resolve()
    return None


def _kernel_id() -> str | None:
    """This kernel's id, from its connection file's name (``kernel-<id>.json``)."""
    try:
        from ipykernel.connect import get_connection_file
        name = Path(get_connection_file()).name
    except Exception:
        return None
    return name[len("kernel-"):-len(".json")] if name.startswith("kernel-") and name.endswith(".json") else None


def _runtime_dir() -> Path | None:
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:
        return None
    return Path(jupyter_runtime_dir())


def session_path(sessions: list[dict[str, Any]], kernel_id: str, root_dir: str) -> Path | None:
    """The notebook of the session whose kernel is ``kernel_id`` (a Jupyter sessions API answer)."""
    for session in sessions:
        if (session.get("kernel") or {}).get("id") == kernel_id and str(session.get("path", "")).endswith(".ipynb"):
            path = Path(root_dir).expanduser() / str(session["path"])
            return path.resolve() if path.is_file() else None
    return None


def _server_notebook() -> Path | None:
    """Ask each Jupyter server on loopback (its runtime file) which notebook runs this kernel."""
    import urllib.request  # only inside a kernel: keeps `import cairn` fast

    kernel_id, runtime = _kernel_id(), _runtime_dir()
    if kernel_id is None or runtime is None or not runtime.is_dir():
        return None
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # urllib would carry the token to wherever a redirect points: an error instead

    # No proxy, whatever $http_proxy says: urllib would send a loopback request (and its token) there.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())
    for info_file in sorted([*runtime.glob("jpserver-*.json"), *runtime.glob("nbserver-*.json")]):
        try:
            info = json.loads(info_file.read_text())
            url = str(info["url"])
            if urlsplit(url).scheme not in ("http", "https") or urlsplit(url).hostname not in LOOPBACK_HOSTS:
                continue  # the token is never sent off this machine
            request = urllib.request.Request(url.rstrip("/") + "/api/sessions",
                                             headers={"Authorization": f"token {info.get('token', '')}"})
            with opener.open(request, timeout=SERVER_TIMEOUT_S) as answer:
                sessions = json.loads(answer.read())
        except (OSError, ValueError, KeyError):
            continue
        found = session_path(sessions, kernel_id, str(info.get("root_dir") or info.get("notebook_dir") or "."))
        if found is not None:
            return found
    return None


def strip_notebook(nb: dict[str, Any], *, outputs: bool) -> dict[str, Any]:
    """The notebook as recorded: without outputs and execution counts (unless ``outputs``, then
    with secrets scrubbed from every output) and without widget state (it can hold anything)."""
    nb = json.loads(json.dumps(nb))
    (nb.get("metadata") or {}).pop("widgets", None)
    for cell in nb.get("cells") or []:
        if cell.get("cell_type") != "code":
            continue
        if outputs:
            cell["outputs"] = [scrub_output(o) for o in cell.get("outputs") or []]
        else:
            cell["outputs"], cell["execution_count"] = [], None
            (cell.get("metadata") or {}).pop("execution", None)  # run times: noise for a digest
    return nb


def _history_cells(shell: Any, outputs: bool) -> list[dict[str, Any]]:
    """The cells this kernel executed, in order (raw input, magics as typed), as notebook cells."""
    sources = list(getattr(shell.history_manager, "input_hist_raw", None) or shell.user_ns.get("In") or [])
    results = shell.user_ns.get("Out") or {}
    cells = []
    for count, source in enumerate(sources):
        if not str(source).strip():
            continue  # In[0] is always empty
        cell: dict[str, Any] = {"cell_type": "code", "id": f"cell-{count}", "metadata": {},
                                "source": str(source), "execution_count": None, "outputs": []}
        if outputs:
            cell["execution_count"] = count
            if count in results:
                cell["outputs"] = [scrub_output({"output_type": "execute_result", "execution_count": count,
                                                 "metadata": {}, "data": {"text/plain": repr(results[count])}})]
        cells.append(cell)
    return cells


def history_notebook(shell: Any, *, outputs: bool) -> dict[str, Any]:
    """A notebook (nbformat 4.5) made of the kernel's executed cells."""
    return {"cells": _history_cells(shell, outputs), "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}}


def find_notebook(shell: Any) -> tuple[Path | None, str]:
    """The ``.ipynb`` this kernel runs and how it was found, or ``(None, "history")``."""
    found = _session_hint(shell)
    if found is not None:
        return found, "session_hint"
    found = _server_notebook()
    if found is not None:
        return found, "jupyter_server"
    return None, "history"


def write_notebook(nb: dict[str, Any], name: str, dest_dir: Path) -> CodeSnapshot:
    """Archive ``nb`` as ``name`` in a deterministic tar.gz named by its digest (like any code snapshot)."""
    folder = dest_dir / f".notebook-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    tmp = dest_dir / f".notebook-{os.getpid()}.tar.gz"
    _write_archive(folder, [name], tmp)
    digest = fingerprint_file(tmp)
    archive = dest_dir / f"{digest}.tar.gz"
    os.replace(tmp, archive)
    return CodeSnapshot(archive=archive, digest=digest, size=archive.stat().st_size, files=1)


def notebook_snapshot(dest_dir: str | os.PathLike[str], *, outputs: bool | None = None) -> CodeSnapshot | None:
    """The running notebook as a code snapshot in ``dest_dir``; None outside IPython, or in an
    IPython that ran no cells (``ipython script.py``): the caller then snapshots the work tree."""
    shell = ipython_shell()
    if shell is None:
        return None
    kept = keep_outputs(outputs)
    path, found_by = find_notebook(shell)
    if path is not None:
        nb, name = strip_notebook(json.loads(path.read_text(encoding="utf-8")), outputs=kept), path.name
    else:
        nb, name = history_notebook(shell, outputs=kept), HISTORY_NAME
        if not nb["cells"]:
            return None  # `ipython script.py`: no cells ran, the script's work tree is the code
    snap = write_notebook(nb, name, Path(dest_dir))
    snap.kind = NOTEBOOK_CODE_KIND
    snap.notebook = {"found_by": found_by, "name": name, "cells": len(nb.get("cells") or []), "outputs_kept": kept}
    return snap
