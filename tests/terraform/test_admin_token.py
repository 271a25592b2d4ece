"""The first site-admin token that a deployment writes before the gateway's first start (the hosts
module makes it on the operator's machine, so agents on other machines can be given it): the
gateway registers that token instead of making one, and anything else in the file is made anew."""

from __future__ import annotations

from pathlib import Path

from cairn.services.gateway.app import preset_admin_token
from cairn.services.gateway.auth import hash_secret, new_token


def test_a_token_written_before_the_first_start_is_the_one_registered(tmp_path: Path) -> None:
    token_id, token, secret_hash = new_token()
    path = tmp_path / "admin.token"
    path.write_text(token + "\n")
    assert preset_admin_token(path) == (token_id, token, secret_hash)


def test_a_secret_with_underscores_keeps_them(tmp_path: Path) -> None:
    secret = "a_b_" + "c" * 40
    path = tmp_path / "admin.token"
    path.write_text(f"cairn_0123456789ab_{secret}\n")
    assert preset_admin_token(path) == ("0123456789ab", f"cairn_0123456789ab_{secret}", hash_secret(secret))


def test_no_file_or_no_token_in_it_means_a_new_one(tmp_path: Path) -> None:
    path = tmp_path / "admin.token"
    assert preset_admin_token(path) is None
    for text in ("", "not a token", "cairn_abc", "cairn_abc_short"):
        path.write_text(text)
        assert preset_admin_token(path) is None, text
