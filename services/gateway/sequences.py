"""Read-your-writes for clients that do not send ``Cairn-Min-Seq`` themselves.

An MLflow client, curl or a browser never sends the header, so with several replicas of a service
its read could reach a replica that has not applied its write yet. The gateway remembers, per
token, the highest ``Cairn-Seq`` a service answered that token with, and names it on the token's
next requests (the larger of it and the client's own). It is memory of one gateway process: behind
a load balancer over several gateways, only clients that send the header themselves (the SDK) get
read-your-writes from every gateway. Bounded: the least recently seen tokens are forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict

from cairn.kernel.identity import Caller

REMEMBERED_TOKENS = 10_000
_MAX_DIGITS = 20


def named_sequence(text: str | None) -> int:
    """A header's sequence (0: none, or not a sequence: the service answers that with a 400)."""
    text = (text or "").strip()
    return int(text) if text.isdigit() and len(text) <= _MAX_DIGITS else 0


class CallerSequences:
    """token id -> the highest event-log sequence a write of that token was answered with."""

    def __init__(self, limit: int = REMEMBERED_TOKENS) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, int] = OrderedDict()

    def floor(self, caller: Caller, named: str | None) -> int:
        """The sequence the caller's next request should wait for: its own header's or ours."""
        return max(named_sequence(named), self._seen.get(caller.token_id, 0))

    def saw(self, caller: Caller, written: str | int | None) -> None:
        """A service answered ``caller`` with ``Cairn-Seq: written``."""
        sequence = written if isinstance(written, int) else named_sequence(written)
        if sequence <= 0:
            return
        key = caller.token_id
        self._seen[key] = max(sequence, self._seen.get(key, 0))
        self._seen.move_to_end(key)
        while len(self._seen) > self.limit:
            self._seen.popitem(last=False)
