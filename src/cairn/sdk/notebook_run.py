"""Execute a notebook top to bottom as a job: ``python -m cairn.sdk.notebook_run NOTEBOOK.ipynb``.

``cairn runs reproduce`` of a run whose code is a notebook queues this command with the notebook's
archive as the job's code. It runs every cell in a fresh kernel of this interpreter (nbclient,
``python3`` kernel: on an agent, the job's Python), with the job's environment, so the notebook's
``cairn.start_run()`` attaches to the job's run and its metrics land there to be compared. Cell
outputs go to the job's log as they would have shown; a failing cell fails the job (exit status 1).
Needs the ``notebooks`` extra (nbclient, nbformat, ipykernel) where the job runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT_S = 3600  # per cell


def notebook_command(code: dict[str, Any]) -> list[str]:
    """The job command that executes a notebook run's recorded notebook (its code record)."""
    name = str((code.get("notebook") or {}).get("name") or "notebook.ipynb")
    return ["python", "-m", "cairn.sdk.notebook_run", name]


def _print_outputs(cells: list[Any]) -> None:
    for number, cell in enumerate(cells, start=1):
        for output in cell.get("outputs") or []:
            if output.get("output_type") == "stream":
                text = output.get("text", "")
                (sys.stderr if output.get("name") == "stderr" else sys.stdout).write(
                    "".join(text) if isinstance(text, list) else text)
            elif output.get("output_type") == "error":
                sys.stderr.write(f"cell {number}: {output.get('ename')}: {output.get('evalue')}\n")


def execute(path: Path, *, timeout_s: float = DEFAULT_TIMEOUT_S, output: Path | None = None) -> int:
    """Run every cell of ``path`` in a new ``python3`` kernel; 0 when all cells ran, 1 otherwise."""
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
    except ImportError as err:
        sys.stderr.write(f"cairn: executing a notebook needs the notebooks extra "
                         f"(pip install 'cairn[notebooks]'): {err}\n")
        return 2
    nb = nbformat.read(path, as_version=4)
    # The kernel finds its notebook through the hint Jupyter gives it (cairn.sdk.notebook).
    os.environ["JPY_SESSION_NAME"] = str(path.resolve())
    client = NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                            resources={"metadata": {"path": str(path.resolve().parent)}})
    status = 0
    try:
        client.execute(env=dict(os.environ))
    except CellExecutionError as err:
        sys.stderr.write(f"cairn: a cell of {path.name} failed:\n{err}\n")
        status = 1
    finally:
        _print_outputs(nb.cells)
        if output is not None:
            nbformat.write(nb, output)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cairn.sdk.notebook_run",
                                     description="Execute a notebook top to bottom (a reproduce job).")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per cell")
    parser.add_argument("--output", type=Path, default=None, help="write the executed notebook here")
    args = parser.parse_args(argv)
    if not args.notebook.is_file():
        parser.error(f"{args.notebook} is not a file")
    return execute(args.notebook, timeout_s=args.timeout, output=args.output)


if __name__ == "__main__":
    raise SystemExit(main())
