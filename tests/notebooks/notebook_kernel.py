"""A real Jupyter kernel driven as a notebook front end drives it (tests/notebooks)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

SECRET = "nb-Secret-Value-93f1c2"  # the kernel's NB_SERVICE_TOKEN: never in a stored notebook


@dataclass
class Kernel:
    """A running ipykernel and a client to it; ``run`` executes one cell and returns its IOPub messages."""

    manager: KernelManager
    client: Any
    folder: Path

    def run(self, code: str, timeout: float = 120) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=messages.append,
                                                stop_on_error=True)
        if reply["content"]["status"] != "ok":
            errors = [m["content"] for m in messages if m["msg_type"] == "error"]
            raise AssertionError(f"cell failed: {reply['content'].get('ename')}: {reply['content'].get('evalue')} "
                                 f"{errors}\n{code}")
        return messages

    def stdout(self, code: str) -> str:
        return "".join(m["content"]["text"] for m in self.run(code)
                       if m["msg_type"] == "stream" and m["content"]["name"] == "stdout")
