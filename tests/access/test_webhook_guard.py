"""Where webhooks may go: globally routable addresses only, checked on the address connected to.

The address table is pure checks (nothing is sent to a public address). The platform of this
module refuses private receivers (``CAIRN_WEBHOOKS_ALLOW_PRIVATE=false``) except 127.0.0.3, which
stands in for a public receiver, and resolves names with a DNS server of the test's own on
127.0.0.1 that answers from a script: the n-th lookup of a name gets the n-th address.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import httpx
import pytest
from webhook_receivers import Receiver, ScriptedDns, wait_until

from cairn.kernel.errors import InvalidInput
from cairn.services.gateway import dns
from cairn.services.gateway.egress import Egress, parse_target, refusal

from platform_harness import Platform, running

REFUSED = {
    "10.0.0.1": "private", "10.255.255.254": "private", "172.16.0.1": "private", "172.31.255.1": "private",
    "192.168.1.1": "private", "127.0.0.1": "loopback", "127.8.9.10": "loopback",
    "169.254.169.254": "link-local", "100.64.0.1": "carrier-grade NAT", "100.100.100.200": "carrier-grade NAT",
    "100.127.255.254": "carrier-grade NAT", "0.0.0.0": "unspecified", "224.0.0.1": "multicast",
    "239.255.255.250": "multicast", "255.255.255.255": "private", "240.0.0.1": "private",
    "192.0.2.1": "private", "198.18.0.1": "private",
    "::1": "loopback", "::": "unspecified", "fe80::1": "link-local", "febf::1": "link-local",
    "fc00::1": "private", "fd12:3456::1": "private", "ff02::1": "multicast", "ff0e::1": "multicast",
    "::ffff:127.0.0.1": "IPv4-mapped form of 127.0.0.1, a loopback",
    "::ffff:10.0.0.1": "IPv4-mapped form of 10.0.0.1, a private",
    "::ffff:169.254.169.254": "IPv4-mapped form of 169.254.169.254, a link-local",
    "::10.0.0.1": "IPv4-compatible", "::8.8.8.8": "IPv4-compatible",
    "64:ff9b::10.0.0.1": "NAT64 form of 10.0.0.1", "64:ff9b::127.0.0.1": "NAT64 form of 127.0.0.1",
    "64:ff9b::100.64.0.1": "NAT64 form of 100.64.0.1, a carrier-grade NAT",
    "2002:a00:1::1": "6to4 form of 10.0.0.1", "2002:7f00:1::1": "6to4 form of 127.0.0.1",
    "2002:a9fe:a9fe::1": "6to4 form of 169.254.169.254", "2001:db8::1": "private",
    "2001::1": "private", "fec0::1": "not a globally routable", "64:ff9b:1::a00:1": "not a globally routable",
}
ACCEPTED = ["8.8.8.8", "1.1.1.1", "9.9.9.9", "100.63.255.255", "100.128.0.1", "2001:4860:4860::8888",
            "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1"]


@pytest.mark.parametrize("address", list(REFUSED))
def test_guard_refuses_addresses_that_are_not_globally_routable(address: str) -> None:
    why = refusal(ip_address(address))
    assert why is not None and REFUSED[address] in why, why


@pytest.mark.parametrize("address", ACCEPTED)
def test_guard_accepts_globally_routable_addresses(address: str) -> None:
    assert refusal(ip_address(address)) is None  # a pure check: nothing is sent there


def test_allow_private_and_allowed_networks_widen_the_guard() -> None:
    assert Egress(allow_private=True).why_refused(ip_address("10.0.0.1")) is None
    narrow = Egress(allow_networks=["10.5.0.0/16"])
    assert narrow.why_refused(ip_address("10.5.1.2")) is None
    assert narrow.why_refused(ip_address("10.6.1.2")) == "a private address"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http:///x", "http://127.1/x", "http://2130706433/x",
                                 "http://0x7f.0.0.1/x", "http://example.com:99999/x"])
def test_urls_that_are_not_plain_http_with_a_host_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        parse_target(url)


def test_name_resolving_to_loopback_is_refused_by_the_system_resolver() -> None:
    with pytest.raises(InvalidInput, match="resolves to 127.0.0.1, a loopback address"):
        asyncio.run(Egress().check_url("http://localhost:8080/x"))


def test_dns_client_reads_the_scripted_server_and_refuses_unknown_names() -> None:
    server = ScriptedDns()
    try:
        server.scripts["two.test"] = ["127.0.0.3", "127.0.0.4"]
        address = ("127.0.0.1", server.port)
        assert asyncio.run(dns.lookup("two.test", address, timeout=5)) == [ip_address("127.0.0.3")]
        assert asyncio.run(dns.lookup("TWO.test.", address, timeout=5)) == [ip_address("127.0.0.4")]
        with pytest.raises(OSError, match="NXDOMAIN"):
            asyncio.run(dns.lookup("nowhere.test", address, timeout=5))
    finally:
        server.close()
    assert dns.parse_server("[::1]:5353") == ("::1", 5353) and dns.parse_server("10.0.0.2") == ("10.0.0.2", 53)
    with pytest.raises(ValueError):
        dns.parse_server("dns.example.com:53")  # a name would need a resolver to find the resolver


# --- a platform that refuses private receivers ----------------------------------------------------

@pytest.fixture(scope="module")
def resolver() -> Iterator[ScriptedDns]:
    server = ScriptedDns()
    yield server
    server.close()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, resolver: ScriptedDns) -> Iterator[Platform]:
    env = {"CAIRN_WEBHOOKS_ALLOW_PRIVATE": "false", "CAIRN_WEBHOOK_ALLOW_NETWORKS": json.dumps(["127.0.0.3/32"]),
           "CAIRN_WEBHOOK_DNS_SERVER": f"127.0.0.1:{resolver.port}", "CAIRN_WEBHOOK_ATTEMPTS": "2"}
    with running(Platform(Path(tmp_path_factory.mktemp("guarded")), env=env)) as plat:
        yield plat


@pytest.fixture(scope="module")
def admin(platform: Platform) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{platform.gateway}/api/v1", headers=platform.headers, timeout=30) as client:
        yield client


def _receivers() -> tuple[Receiver, Receiver]:
    """A receiver on 127.0.0.3 (the permitted stand-in) and one on 127.0.0.1, on the same port."""
    for _ in range(20):
        allowed = Receiver(host="127.0.0.3")
        try:
            return allowed, Receiver(host="127.0.0.1", port=allowed.port)
        except OSError:  # that port is taken on 127.0.0.1: another one
            allowed.close()
    raise AssertionError("no port free on both 127.0.0.3 and 127.0.0.1")


def test_refused_receivers_are_422_naming_the_address(platform: Platform, admin: httpx.Client,
                                                      resolver: ScriptedDns) -> None:
    admin.post("/registry/projects", json={"name": "guarded"}).raise_for_status()
    resolver.scripts.update({"private.test": ["10.0.0.1"], "metadata.test": ["100.100.100.200"]})
    cases = {
        "http://127.0.0.1:9/x": "127.0.0.1 is a loopback address",
        "http://10.1.2.3/x": "10.1.2.3 is a private address",
        "http://100.64.0.1/x": "100.64.0.1 is a carrier-grade NAT address",
        "http://169.254.169.254/latest/meta-data": "169.254.169.254 is a link-local address",
        "http://[::1]:9/x": "::1 is a loopback address",
        "http://[::ffff:127.0.0.1]/x": "IPv4-mapped form of 127.0.0.1",
        "http://[64:ff9b::a00:1]/x": "NAT64 form of 10.0.0.1",
        "http://[2002:a00:1::1]/x": "6to4 form of 10.0.0.1",
        "http://private.test/x": "'private.test' resolves to 10.0.0.1, a private address",
        "https://metadata.test/x": "'metadata.test' resolves to 100.100.100.200, a carrier-grade NAT address",
        "http://nowhere.test/x": "cannot resolve url's host 'nowhere.test'",
    }
    for url, message in cases.items():
        resp = admin.post("/projects/guarded/webhooks", json={"url": url, "types": ["run.*"]})
        assert resp.status_code == 422, (url, resp.text)
        assert message in resp.json()["error"]["message"], resp.json()
    assert admin.get("/projects/guarded/webhooks").json()["webhooks"] == []  # nothing was created


def test_a_name_rebound_to_loopback_reaches_nothing(platform: Platform, admin: httpx.Client,
                                                    resolver: ScriptedDns) -> None:
    """The name answers a public address to the check at creation (a pure check: no request goes
    there) and 127.0.0.1 from then on: every delivery attempt looks it up once, refuses 127.0.0.1,
    and the event ends in the dead letters without a request reaching the loopback receiver."""
    loopback = Receiver(host="127.0.0.1")
    try:
        resolver.scripts["rebind.test"] = ["8.8.8.8", "127.0.0.1"]
        admin.post("/registry/projects", json={"name": "rebound"}).raise_for_status()
        url = f"http://rebind.test:{loopback.port}/hook"
        hook = admin.post("/projects/rebound/webhooks", json={"url": url, "types": ["run.*"]}).json()
        assert resolver.lookups["rebind.test"] == 1
        admin.post("/registry/projects/rebound/runs", json={"name": "r"}).raise_for_status()
        letters = f"/projects/rebound/webhooks/{hook['id']}/dead-letters"
        wait_until(lambda: admin.get(letters).json()["dead_letters"], what="the dead letter")
        [letter] = admin.get(letters).json()["dead_letters"]
        assert "resolves to 127.0.0.1, a loopback address" in letter["error"] and letter["attempts"] == 2
        assert loopback.requests == []
        assert resolver.lookups["rebind.test"] == 1 + 2  # the check at creation, then one per attempt
    finally:
        loopback.close()


def test_delivery_connects_to_the_address_it_checked(platform: Platform, admin: httpx.Client,
                                                     resolver: ScriptedDns) -> None:
    """The name answers the permitted 127.0.0.3 twice (the check at creation, the delivery's
    lookup) and 127.0.0.1 after that: a client that looked the name up again to connect would
    reach the receiver on 127.0.0.1. The request goes to 127.0.0.3 with the name as its Host."""
    allowed, loopback = _receivers()
    try:
        resolver.scripts["flip.test"] = ["127.0.0.3", "127.0.0.3", "127.0.0.1"]
        admin.post("/registry/projects", json={"name": "pinned"}).raise_for_status()
        url = f"http://flip.test:{allowed.port}/hook"
        admin.post("/projects/pinned/webhooks", json={"url": url, "types": ["run.*"]}).raise_for_status()
        run = admin.post("/registry/projects/pinned/runs", json={"name": "r"}).json()
        wait_until(lambda: allowed.received, what="the delivery to 127.0.0.3")
        [(event, _, headers)] = allowed.received
        assert event["aggregate_id"] == run["id"] and headers["Host"] == f"flip.test:{allowed.port}"
        assert resolver.lookups["flip.test"] == 2
        assert loopback.requests == []
    finally:
        allowed.close()
        loopback.close()
