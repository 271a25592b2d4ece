"""Where outgoing calls may go: globally routable addresses only, checked on the address actually
connected to. The gateway's webhooks and the pipelines service's commit statuses use it; it lives
in the kernel because it is a platform rule (docs/security.md), not one service's code.

Webhook URLs are chosen by project admins (and status URLs by site admins), so a service must not
become their way into the networks it sits in (SSRF): loopback services, the private network, cloud metadata services
(169.254.169.254, and 100.100.100.200 in carrier-grade NAT space). Two rules make that hold:

1. **Globally routable only** (:func:`refusal`): ``is_global`` and neither multicast nor reserved.
   An IPv6 address that carries an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``,
   NAT64 ``64:ff9b::/96``) is judged by the IPv4 address it reaches; the deprecated
   IPv4-compatible form ``::a.b.c.d`` is refused outright.
2. **Resolve once, connect to what was checked** (:meth:`Egress.post`): each call looks the name up
   once, refuses it if any address it resolves to is refused, and connects to a checked address:
   the URL's host is replaced by the address, while the ``Host`` header and the TLS server name
   (SNI and certificate check) stay the name. The HTTP client has a resolver that refuses every
   lookup, so a second lookup cannot happen by accident: DNS rebinding (a public address at check
   time, loopback at connect time) has nothing to race.

``CAIRN_WEBHOOKS_ALLOW_PRIVATE`` switches rule 1 off (tests, a single-machine setup);
``CAIRN_WEBHOOK_ALLOW_NETWORKS`` allows named networks only. Rule 2 is the same code either way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from cairn.kernel import dns
from cairn.kernel.errors import InvalidInput

Address = IPv4Address | IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

CARRIER_GRADE_NAT = ip_network("100.64.0.0/10")
NAT64 = ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ip_network("::/96")
# Not reachable on the Internet, though ``is_global`` says so on some Python versions:
# deprecated site-local, local-use NAT64 (RFC 8215), documentation (RFC 9637).
NOT_GLOBAL_V6 = (ip_network("fec0::/10"), ip_network("64:ff9b:1::/48"), ip_network("3fff::/20"))
# A host written only with digits, dots and hex prefixes that is not a dotted quad: "127.1",
# "2130706433", "0x7f.1" -- legacy forms that resolvers map onto addresses.
NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*\.?\Z", re.IGNORECASE)
ALLOW_HINT = ("webhooks go only to globally routable addresses (a site admin may allow a network "
              "with CAIRN_WEBHOOK_ALLOW_NETWORKS)")


def refusal(address: Address) -> str | None:
    """Why ``address`` is not a globally routable destination, or None when it is."""
    if isinstance(address, IPv6Address) and not (address.is_loopback or address.is_unspecified):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            form, v4 = embedded
            why = refusal(v4)
            return f"the {form} form of {v4}, {why}" if why else None
        if address in IPV4_COMPATIBLE:
            return f"a deprecated IPv4-compatible IPv6 address (of {IPv4Address(int(address) & 0xFFFFFFFF)})"
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services answer)"
    if address in CARRIER_GRADE_NAT:
        return "a carrier-grade NAT address (100.64.0.0/10, where some clouds' metadata services answer)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global or any(address in net for net in NOT_GLOBAL_V6):
        return "not a globally routable address"
    return None


def _embedded_ipv4(address: IPv6Address) -> tuple[str, IPv4Address] | None:
    """The IPv4 address an IPv6 one reaches through a translation form, if it is one."""
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address in NAT64:
        return "NAT64", IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    return None


@dataclass(frozen=True)
class Target:
    """A receiver URL taken apart: what to look up, and how to address the request to the name."""

    url: URL
    host: str  # ASCII (IDNA) name, or an address literal

    @property
    def port(self) -> int:
        return self.url.port or (443 if self.url.scheme == "https" else 80)

    @property
    def literal(self) -> Address | None:
        try:
            return ip_address(self.host)
        except ValueError:
            return None

    @property
    def host_header(self) -> str:
        return self.url.host_port_subcomponent or self.host

    @property
    def tls_name(self) -> str | None:
        """The name the certificate must match (and the SNI), kept when the host is replaced."""
        return self.host if self.url.scheme == "https" and self.literal is None else None

    def at(self, address: Address) -> URL:
        return self.url.with_host(str(address))


def parse_target(url: str) -> Target:
    """An http(s) URL with a host, or InvalidInput saying what is wrong with it."""
    try:
        parsed = URL(url)
        host = parsed.raw_host
        parsed.port  # noqa: B018 - a bad port raises here
    except (ValueError, TypeError) as err:
        raise InvalidInput(f"url is not a valid URL: {err}", details={"field": "url"}) from None
    if parsed.scheme not in ("http", "https") or not host:
        raise InvalidInput("url must be an http:// or https:// URL with a host", details={"field": "url"})
    if ":" not in host and NUMERIC_HOST.match(host):
        try:
            IPv4Address(host)
        except ValueError:
            raise InvalidInput(f"url's host {host!r} is not a dotted-quad IPv4 address; write the address "
                               "as four decimal numbers", details={"field": "url"}) from None
    return Target(parsed, host)


class _NoLookups(AbstractResolver):
    """The HTTP client's resolver: it is only ever given checked addresses, so a name reaching it is
    a bug that must fail, not a lookup that could answer differently from the checked one."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        raise OSError(f"refusing to look up {host!r}: outgoing calls connect only to checked addresses")

    async def close(self) -> None:
        return None


class Egress:
    """Outgoing HTTP calls to receivers that admins name (webhooks, commit statuses)."""

    def __init__(self, *, allow_private: bool = False, allow_networks: Iterable[str] = (),
                 dns_server: str = "", timeout_s: float = 10.0) -> None:
        self.allow_private = allow_private
        self.allow_networks: tuple[Network, ...] = tuple(ip_network(n, strict=False) for n in allow_networks)
        self.dns_server = dns.parse_server(dns_server) if dns_server else None
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None

    def why_refused(self, address: Address) -> str | None:
        """None when calls may go to ``address`` under this site's settings."""
        if self.allow_private or any(address in net for net in self.allow_networks):
            return None
        return refusal(address)

    async def lookup(self, host: str, port: int) -> list[Address]:
        """Every address ``host`` has now (one lookup), in the resolver's order; OSError if none."""
        if self.dns_server is not None:
            return await dns.lookup(host, self.dns_server, timeout=self.timeout_s)
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses: list[Address] = []
        for info in infos:
            address = ip_address(str(info[4][0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        return addresses

    async def resolve(self, target: Target) -> list[Address]:
        """The target's addresses, each checked; InvalidInput (saying which address and why) if any
        is refused or the name does not resolve."""
        literal = target.literal
        if literal is not None:
            why = self.why_refused(literal)
            if why:
                raise InvalidInput(f"url's host {literal} is {why}; {ALLOW_HINT}", details={"field": "url"})
            return [literal]
        try:
            addresses = await asyncio.wait_for(self.lookup(target.host, target.port), self.timeout_s)
        except (OSError, asyncio.TimeoutError) as err:
            timed_out = isinstance(err, asyncio.TimeoutError)
            reason = "no answer in time" if timed_out else (err.strerror or str(err))
            raise InvalidInput(f"cannot resolve url's host {target.host!r}: {reason}",
                               details={"field": "url"}) from None
        if not addresses:
            raise InvalidInput(f"url's host {target.host!r} has no addresses", details={"field": "url"})
        for address in addresses:
            why = self.why_refused(address)
            if why:
                raise InvalidInput(f"url's host {target.host!r} resolves to {address}, {why}; {ALLOW_HINT}",
                                   details={"field": "url", "address": str(address)})
        return addresses

    async def check_url(self, url: str) -> str:
        """For a new webhook: the URL if it parses and resolves only to permitted addresses."""
        await self.resolve(parse_target(url))
        return url

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body`` to ``url`` through one checked address and return the status code. Looks
        the name up exactly once; on a connection failure tries the lookup's other addresses.
        InvalidInput: refused or unresolvable; aiohttp.ClientError or asyncio.TimeoutError: the call
        failed. The whole call (lookup included) takes at most ``timeout_s``."""
        status, _ = await self.post_for_reply(url, body, headers, reply_limit=0)
        return status

    async def post_for_reply(self, url: str, body: bytes, headers: Mapping[str, str], *,
                             reply_limit: int = 65536) -> tuple[int, bytes]:
        """As :meth:`post`, and also the first ``reply_limit`` bytes of the reply's body (for
        callers that report the receiver's own error message, such as commit statuses)."""
        target = parse_target(url)
        return await asyncio.wait_for(self._post(target, body, headers, reply_limit), self.timeout_s)

    async def _post(self, target: Target, body: bytes, headers: Mapping[str, str],
                    reply_limit: int) -> tuple[int, bytes]:
        session = self._client()
        failure: Exception | None = None
        for address in await self.resolve(target):
            try:
                async with session.post(target.at(address), data=body, allow_redirects=False,
                                        headers={**headers, "Host": target.host_header},
                                        server_hostname=target.tls_name) as resp:
                    reply = await resp.content.read(reply_limit) if reply_limit > 0 else b""
                    return resp.status, reply
            except aiohttp.ClientConnectorError as err:
                failure = err  # this address does not answer: the next one from the same lookup
        assert failure is not None  # resolve never returns an empty list
        raise failure

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # limit=0: a receiver that never answers holds its own connection, never a shared slot.
            # trust_env=False: no proxy from the environment, which would connect by name.
            connector = aiohttp.TCPConnector(limit=0, use_dns_cache=False, resolver=_NoLookups())
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                                  timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

