"""The signed caller identity (pure): what verifies, what does not, and what each route
requirement lets through."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from cairn.kernel.errors import Forbidden, NotFound, Unauthorized
from cairn.kernel.identity import (
    ACCOUNT,
    ADMIN,
    AGENT,
    EDITOR,
    INTERNAL,
    LIFETIME_S,
    PERSON,
    SIGNED_IN,
    SITE_ADMIN,
    VIEWER,
    Caller,
    Signer,
    Verifier,
    check_requirement,
    load_service_key,
    requires,
)

KEY = bytes(range(32))
EDITOR_OF_A = Caller("ann", "t1", "user", False, {"a": "editor"})
NOW = 1_800_000_000.0


def test_a_signed_caller_verifies_as_itself_with_its_signer() -> None:
    header = Signer(KEY, "gateway").sign(EDITOR_OF_A, now=NOW)
    caller = Verifier(KEY).verify(header, now=NOW + LIFETIME_S - 1)
    assert caller == Caller("ann", "t1", "user", False, {"a": "editor"}, "gateway")
    assert caller.actor == "ann:t1" and caller.projects == ["a"]


@pytest.mark.parametrize("mangle", [
    lambda h: h.replace("gateway.", "registry.", 1),                      # another signer's key
    lambda h: h[:-2] + ("AA" if not h.endswith("AA") else "BB"),          # MAC changed
    lambda h: h.split(".")[0] + "." + base64.urlsafe_b64encode(orjson.dumps(
        {"u": "ann", "t": "t1", "k": "user", "a": True, "r": {}, "x": 2_000_000_000})).rstrip(b"=").decode()
        + "." + h.split(".")[2],                                          # claims raised to site admin
    lambda h: "nobody." + h.split(".", 1)[1],                             # unknown signer
    lambda h: h + ".x",                                                   # not three parts
    lambda h: "",                                                         # none
])
def test_anything_but_the_signed_header_is_401(mangle) -> None:  # type: ignore[no-untyped-def]
    header = Signer(KEY, "gateway").sign(EDITOR_OF_A, now=NOW)
    with pytest.raises(Unauthorized):
        Verifier(KEY).verify(mangle(header), now=NOW)


def test_an_expired_signature_or_another_sites_key_is_401() -> None:
    header = Signer(KEY, "gateway").sign(EDITOR_OF_A, now=NOW)
    with pytest.raises(Unauthorized, match="expired"):
        Verifier(KEY).verify(header, now=NOW + LIFETIME_S + 1)
    with pytest.raises(Unauthorized):
        Verifier(bytes(32)).verify(header, now=NOW)


def test_internal_headers_are_reused_until_half_their_life_is_gone() -> None:
    signer = Signer(KEY, "metrics")
    first = signer.internal()
    assert signer.internal() == first
    caller = Verifier(KEY).verify(first["X-Cairn-Identity"])
    assert caller.kind == "internal" and caller.site_admin and caller.signer == "metrics"


CALLERS = {
    "viewer": Caller("v", "t", "user", False, {"a": "viewer"}),
    "editor": EDITOR_OF_A,
    "admin": Caller("d", "t", "user", False, {"a": "admin"}),
    "service account": Caller("bot", "t", "service", False, {"a": "editor"}),
    "job": Caller("ann", "job-1", "job", False, {"a": "editor"}),
    "site admin": Caller("root", "t", "user", True, {}),
    "internal": Caller("service:registry", "registry", "internal", True, {}, "registry"),
}
ALLOWED = {  # requirement -> who passes it in project "a" ("-" means the route names no project)
    (VIEWER, "a"): {"viewer", "editor", "admin", "service account", "job", "site admin", "internal"},
    (EDITOR, "a"): {"editor", "admin", "service account", "job", "site admin", "internal"},
    (ADMIN, "a"): {"admin", "site admin", "internal"},
    (ADMIN, "b"): {"site admin", "internal"},
    (ADMIN, "-"): {"site admin", "internal"},
    (SIGNED_IN, "-"): set(CALLERS),
    (PERSON, "-"): {"viewer", "editor", "admin", "site admin", "internal"},
    (ACCOUNT, "-"): {"viewer", "editor", "admin", "service account", "site admin", "internal"},
    (AGENT, "-"): {"service account", "site admin", "internal"},
    (SITE_ADMIN, "-"): {"site admin", "internal"},
    (INTERNAL, "-"): {"internal"},
}


@pytest.mark.parametrize(("requirement", "project"), list(ALLOWED))
def test_each_requirement_lets_through_exactly_its_callers(requirement: str, project: str) -> None:
    passed = set()
    for name, caller in CALLERS.items():
        try:
            check_requirement(caller, requirement, None if project == "-" else project)
            passed.add(name)
        except (Forbidden, NotFound):
            pass
    assert passed == ALLOWED[(requirement, project)]


def test_a_non_member_is_told_nothing_exists_and_a_member_what_role_is_missing() -> None:
    with pytest.raises(NotFound, match="not a member"):
        check_requirement(EDITOR_OF_A, VIEWER, "b")
    with pytest.raises(Forbidden, match="admin role"):
        check_requirement(EDITOR_OF_A, ADMIN, "a")


def test_a_route_declares_its_requirement_in_openapi_and_unknown_ones_are_refused() -> None:
    assert requires(EDITOR)["openapi_extra"] == {"x-cairn-role": "editor"}
    with pytest.raises(ValueError):
        requires("superuser")


def test_the_service_key_is_made_once_private_and_then_read(tmp_path: Path) -> None:
    key = load_service_key(tmp_path)
    assert len(key) == 32 and load_service_key(tmp_path) == key
    assert (tmp_path / "secrets" / "service.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secrets").stat().st_mode & 0o777 == 0o700
    (tmp_path / "secrets" / "service.key").write_text("short\n")
    with pytest.raises(ValueError, match="32-byte"):
        load_service_key(tmp_path)
