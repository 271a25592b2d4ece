"""A small DNS stub resolver over UDP, for sites (and tests) that resolve webhook hosts with a DNS
server of their choice (``CAIRN_WEBHOOK_DNS_SERVER``) instead of the system's resolver.

A and AAAA only, asked of one recursive server. An answer is believed only if it comes from that
server (a connected UDP socket), carries the query's random id, is a response, and echoes the
question; anything else is ignored or refused, never guessed at.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
from ipaddress import IPv4Address, IPv6Address, ip_address

A, AAAA, IN = 1, 28, 1
HEADER = struct.Struct("!HHHHHH")  # id, flags, questions, answers, authority, additional
RECORD = struct.Struct("!HHIH")  # type, class, ttl, data length
QR, TC, RD = 0x8000, 0x0200, 0x0100
NXDOMAIN = 3


class Mismatch(OSError):
    """A datagram that is not the answer to our query (another query's, or forged): ignored."""


def parse_server(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` -> (address, port); ValueError says what is wrong."""
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = int(rest.removeprefix(":"))
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = int(port_text)
    ip_address(host)  # a DNS server is named by its address: looking it up would need a resolver
    if not 0 < port < 65536:
        raise ValueError(f"DNS server port {port} is out of range")
    return host, port


def encode_question(name: str, qtype: int) -> bytes:
    labels = name.rstrip(".").split(".")
    encoded = b""
    for label in labels:
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise OSError(f"{name!r} is not a valid host name")
        encoded += bytes([len(raw)]) + raw
    if len(encoded) > 254:
        raise OSError(f"{name!r} is longer than a host name may be")
    return encoded + b"\0" + struct.pack("!HH", qtype, IN)


def _skip_name(data: bytes, offset: int) -> int:
    """The offset just past the (possibly compressed) name that starts at ``offset``."""
    while True:
        if offset >= len(data):
            raise OSError("malformed DNS answer: a name runs past the end")
        length = data[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:
            return offset + 2  # a pointer ends the name
        offset += 1 + length


def parse_answer(data: bytes, txid: int, question: bytes, name: str) -> list[IPv4Address | IPv6Address]:
    """The addresses of the question's type in a response; OSError for an error or a bad answer."""
    if len(data) < HEADER.size:
        raise OSError("malformed DNS answer: shorter than a header")
    rid, flags, questions, answers, _, _ = HEADER.unpack_from(data)
    if rid != txid or not flags & QR or questions != 1 \
            or data[HEADER.size:HEADER.size + len(question)].lower() != question.lower():
        raise Mismatch("DNS answer does not match the query")
    if flags & TC:
        raise OSError(f"DNS answer for {name!r} was truncated")
    rcode = flags & 0xF
    if rcode == NXDOMAIN:
        raise OSError(f"{name!r} does not exist (NXDOMAIN)")
    if rcode != 0:
        raise OSError(f"DNS server answered {name!r} with error code {rcode}")
    qtype = struct.unpack_from("!H", question, len(question) - 4)[0]
    offset = HEADER.size + len(question)
    found: list[IPv4Address | IPv6Address] = []
    for _ in range(answers):
        offset = _skip_name(data, offset)
        if offset + RECORD.size > len(data):
            raise OSError("malformed DNS answer: a record runs past the end")
        rtype, rclass, _, length = RECORD.unpack_from(data, offset)
        offset += RECORD.size
        rdata = data[offset:offset + length]
        offset += length
        if len(rdata) != length:
            raise OSError("malformed DNS answer: record data runs past the end")
        if rclass == IN and rtype == qtype == A and length == 4:
            found.append(IPv4Address(rdata))
        elif rclass == IN and rtype == qtype == AAAA and length == 16:
            found.append(IPv6Address(rdata))
        # other records (CNAMEs on the way to the address) carry no address
    return found


class _Exchange(asyncio.DatagramProtocol):
    """One query on its own connected socket: the first datagram that is an answer to it wins."""

    def __init__(self, txid: int, question: bytes, name: str) -> None:
        self.txid, self.question, self.name = txid, question, name
        self.result: asyncio.Future[list[IPv4Address | IPv6Address]] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self.result.done():
            return
        try:
            self.result.set_result(parse_answer(data, self.txid, self.question, self.name))
        except Mismatch:
            pass  # keep waiting for the real answer
        except OSError as err:
            self.result.set_exception(err)

    def error_received(self, exc: Exception) -> None:
        if not self.result.done():
            self.result.set_exception(OSError(f"DNS server unreachable: {exc}"))


async def _query(name: str, qtype: int, server: tuple[str, int]) -> list[IPv4Address | IPv6Address]:
    txid = secrets.randbits(16)
    question = encode_question(name, qtype)
    loop = asyncio.get_running_loop()
    transport, exchange = await loop.create_datagram_endpoint(
        lambda: _Exchange(txid, question, name), remote_addr=server)
    try:
        transport.sendto(HEADER.pack(txid, RD, 1, 0, 0, 0) + question)
        return await exchange.result
    finally:
        transport.close()


async def lookup(name: str, server: tuple[str, int], *, timeout: float) -> list[IPv4Address | IPv6Address]:
    """Every A and AAAA address of ``name`` (IPv4 first), asked of ``server`` once; OSError if the
    name has none or the server does not answer within ``timeout`` seconds."""
    queries = [asyncio.ensure_future(_query(name, qtype, server)) for qtype in (A, AAAA)]
    try:
        v4, v6 = await asyncio.wait_for(asyncio.gather(*queries), timeout)
    except asyncio.TimeoutError:
        raise OSError(f"DNS server {server[0]}:{server[1]} did not answer for {name!r} in {timeout:g}s") from None
    finally:
        for query in queries:  # one failed: the other's socket is closed, not left waiting
            query.cancel()
    if not v4 and not v6:
        raise OSError(f"{name!r} has no A or AAAA records")
    return [*v4, *v6]
