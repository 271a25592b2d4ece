"""The DNS stub resolver moved to :mod:`cairn.kernel.dns` with the egress guard that uses it; these
names stay importable from here for the gateway's existing callers."""

from cairn.kernel.dns import lookup, parse_answer, parse_server

__all__ = ["lookup", "parse_answer", "parse_server"]
