"""The members, audit log, tokens and webhooks pages in a real browser against a real ``cairn up``.

The admin adds a member and changes the role (and sees the API's message for a bad name), finds
that in the audit log and narrows it with a filter, creates a token whose secret shows once and
revokes it, and creates a webhook to a loopback receiver that fails, sees the failed attempts in
the webhook's deliveries and the dead letter, and replays it once the receiver recovers (a
delivered attempt on top). The audit page shows the newest action first and "Older" pages back. A viewer of the same project sees the members read-only and
no webhooks link or controls. axe-core checks every page; the four pages are photographed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_driver import (
    BROWSER_TEST,
    no_violations,
    open_context,
    shot,
    sign_in,
)
from up_driver import Up, wait
from webhook_receivers import Receiver

import cairn

# The shared `cairn up` (tests/ui/conftest.py, STACK_ENV) allows loopback receivers and makes two
# quick attempts, so a failing delivery dead-letters at once.
playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = BROWSER_TEST

PROJECT = "keepers"
T = 30_000


def test_admin_pages(up: Up, pw: Any, tmp_path: Path) -> None:
    admin_token = (up.data_dir / "admin.token").read_text().strip()
    client = cairn.Client(up.url, token=admin_token)
    client.create_project(PROJECT)
    viewer_token = client.create_token("keep-viewer")["token"]
    client.add_member(PROJECT, "keep-viewer", "viewer")
    failing = {"on": True}
    receiver = Receiver(status_for=lambda _headers: 500 if failing["on"] else 204)

    admin = open_context(pw, tmp_path / "admin-profile")
    try:
        page = admin.new_page()
        sign_in(page, up.url, admin_token)

        # Members: a bad name gets the API's message and changes nothing; add, change, remove.
        page.goto(f"{up.url}/projects/{PROJECT}/members")
        page.get_by_role("row", name="keep-viewer").wait_for(timeout=T)
        page.get_by_label("User", exact=True).fill("Not A User!")
        page.get_by_role("button", name="Add member").click()
        page.locator("form.member-add .error").wait_for(timeout=T)
        assert [m["user"] for m in client.list_members(PROJECT)] == ["keep-viewer"]
        page.get_by_label("User", exact=True).fill("keep-olga")
        page.locator("form.member-add select[name=role]").select_option("editor")
        page.get_by_role("button", name="Add member").click()
        page.get_by_label("Role of keep-olga").wait_for(timeout=T)
        assert page.get_by_label("Role of keep-olga").input_value() == "editor"
        assert page.locator("form.member-add .error").count() == 0
        page.get_by_label("Role of keep-olga").select_option("admin")
        wait(lambda: {m["user"]: m["role"] for m in client.list_members(PROJECT)}.get("keep-olga") == "admin",
             10, "keep-olga to be an admin")
        page.get_by_role("button", name="Remove keep-viewer").click()  # armed, then another item: nothing removed
        page.get_by_role("button", name="Confirm removing keep-viewer").wait_for(timeout=T)
        page.get_by_role("button", name="Remove keep-olga").click()
        page.get_by_role("button", name="Confirm removing keep-olga").click()
        page.get_by_label("Role of keep-olga").wait_for(state="detached", timeout=T)
        assert [m["user"] for m in client.list_members(PROJECT)] == ["keep-viewer"]
        page.get_by_text("live", exact=True).wait_for(timeout=T)
        client.add_member(PROJECT, "keep-olga", "editor")  # through the SDK: the open page shows it live
        page.get_by_label("Role of keep-olga").wait_for(timeout=T)
        assert page.get_by_label("Role of keep-olga").input_value() == "editor"
        no_violations(page, "the members page")
        shot(page, "members", tmp_path)

        # Audit: the member changes are there, newest first; a filter narrows the table (in the URL).
        page.goto(f"{up.url}/audit?project={PROJECT}")
        table = page.locator("table.audit-table tbody tr")
        table.first.wait_for(timeout=T)
        actions = table.locator("th").all_inner_texts()
        assert "member.added" in actions and "member.removed" in actions and "project.created" in actions
        page.get_by_label("Event types").fill("member.removed")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**type=member.removed**", timeout=T)
        wait(lambda: table.locator("th").all_inner_texts() == ["member.removed"], 10, "only the removal")
        assert PROJECT in table.first.inner_text() and "user=keep-olga" in table.first.inner_text()
        page.reload()
        wait(lambda: table.locator("th").all_inner_texts() == ["member.removed"], 10, "the filter kept on reload")
        page.get_by_label("Event types").fill("")
        page.get_by_role("button", name="Filter").click()
        wait(lambda: table.count() > 3, 10, "the unfiltered log")
        seqs = [int(t.split("#")[1].rstrip(")")) for t in table.locator("td:nth-child(7)").all_inner_texts()]
        assert seqs == sorted(seqs, reverse=True), "newest first"
        no_violations(page, "the audit page")
        shot(page, "audit", tmp_path)
        # Newest first from the log itself: the first row is the last action (keep-olga added back
        # through the SDK above); pages of 3 (?limit=3), and "Older" loads the next page back.
        newest = httpx.get(f"{up.url}/api/v1/audit", params={"project": PROJECT, "order": "desc", "limit": 1},
                           headers={"Authorization": f"Bearer {admin_token}"}).json()["events"][0]
        page.goto(f"{up.url}/audit?project={PROJECT}&limit=3")
        wait(lambda: table.count() == 3, 10, "the newest page of 3")
        assert newest["type"] == "member.added" and table.first.locator("th").inner_text() == "member.added"
        assert f"#{newest['sequence']})" in table.first.inner_text()
        page.get_by_role("button", name="Older").click()
        wait(lambda: table.count() == 6, 10, "the next page back")
        seqs = [int(t.split("#")[1].rstrip(")")) for t in table.locator("td:nth-child(7)").all_inner_texts()]
        assert seqs == sorted(seqs, reverse=True) and seqs[0] == newest["sequence"]

        # Tokens: the secret shows once, is gone after dismissing and after a reload; revoke.
        page.goto(f"{up.url}/tokens")
        page.get_by_label("Description").fill("made in the browser")
        page.get_by_label("Expires in (days, empty: never)").fill("7")
        page.get_by_role("button", name="Create token").click()
        secret = page.locator("#token-secret-value")
        secret.wait_for(timeout=T)
        token = secret.inner_text()
        assert token.startswith("cairn_")
        made = next(t for t in client.list_tokens() if t["description"] == "made in the browser")
        assert cairn.Client(up.url, token=token).whoami()["user"] == "admin"
        row = page.locator(f"#token-{made['token_id']}")
        assert "in 6 days" in row.inner_text() or "in 7 days" in row.inner_text()
        no_violations(page, "the tokens page with a new secret")
        page.get_by_role("button", name="Dismiss").click()
        assert secret.count() == 0
        page.reload()
        row.wait_for(timeout=T)
        assert page.locator("#token-secret-value").count() == 0 and token not in page.content()
        assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
        page.get_by_role("button", name=f"Revoke {made['token_id']}").click()
        page.get_by_role("button", name=f"Confirm revoking {made['token_id']}").click()
        row.locator(".badge", has_text="revoked").wait_for(timeout=T)
        assert next(t for t in client.list_tokens() if t["token_id"] == made["token_id"])["revoked"]
        shot(page, "tokens", tmp_path)

        # Webhooks: create (secret once), a failing receiver -> a dead letter, replay once it works.
        page.goto(f"{up.url}/projects/{PROJECT}/webhooks")
        page.get_by_label("URL").fill(receiver.url)
        page.get_by_label("Event types").fill("experiment.*")
        page.get_by_role("button", name="Add webhook").click()
        page.get_by_text("whsec_").wait_for(timeout=T)
        [hook] = client.list_webhooks(PROJECT)
        client.create_experiment(PROJECT, "hooked")
        wait(lambda: client.dead_letters(PROJECT, hook["id"]), 20, "the dead letter")
        page.get_by_role("button", name="Show dead letters").click()
        letters = page.locator("table.webhook-dead tbody tr")
        letters.first.wait_for(timeout=T)
        assert "HTTP 500" in letters.first.inner_text()
        # The webhook's row: its delivery attempts, newest first, after a refresh.
        deliveries = page.locator(f"#deliveries-{hook['id']}")
        deliveries.get_by_text("No delivery attempts yet.").wait_for(timeout=T)
        page.get_by_role("button", name=f"Refresh deliveries of webhook {receiver.url}").click()
        attempts = deliveries.locator("table.webhook-attempts tbody tr")
        attempts.first.wait_for(timeout=T)
        rows = attempts.all_inner_texts()
        assert len(rows) == 2 and "dead lettered" in rows[0] and "retrying" in rows[1]
        assert "experiment.created" in rows[0] and "HTTP 500" in rows[0]
        no_violations(page, "the webhooks page")
        shot(page, "webhooks", tmp_path)
        failing["on"] = False
        page.get_by_role("button", name="Replay 1 dead letters").click()
        page.get_by_text("Replaying 1 events.").wait_for(timeout=T)
        wait(lambda: len(receiver.received) == 1, 20, "the replayed delivery")
        assert receiver.received[0][0]["type"] == "experiment.created"
        page.get_by_role("button", name="Refresh", exact=True).click()
        page.get_by_text("No dead letters.").wait_for(timeout=T)
        page.get_by_role("button", name=f"Refresh deliveries of webhook {receiver.url}").click()
        wait(lambda: "delivered" in attempts.first.inner_text(), 10, "the replayed delivery's row")
        assert attempts.count() == 3
        page.get_by_role("button", name=f"Delete webhook {receiver.url}").click()
        page.get_by_role("button", name=f"Confirm deleting webhook {receiver.url}").click()
        page.locator(f"#webhook-{hook['id']}").wait_for(state="detached", timeout=T)
        assert client.list_webhooks(PROJECT) == []
    finally:
        admin.close()
        receiver.close()

    # The viewer: members read-only, no webhooks link or controls, no audit link.
    viewer = open_context(pw, tmp_path / "viewer-profile")
    try:
        vpage = viewer.new_page()
        sign_in(vpage, up.url, viewer_token)
        vpage.goto(f"{up.url}/projects/{PROJECT}/members")
        vpage.get_by_role("row", name="keep-olga").wait_for(timeout=T)
        assert vpage.locator("main select, main button, main input, form.member-add").count() == 0
        nav = vpage.get_by_role("navigation", name=f"Project {PROJECT}")
        assert nav.get_by_role("link", name="Members").count() == 1
        assert nav.get_by_role("link", name="Webhooks").count() == 0
        assert vpage.get_by_role("link", name="Audit log").count() == 0
        no_violations(vpage, "the members page (viewer)")
        vpage.goto(f"{up.url}/projects/{PROJECT}/webhooks")
        vpage.get_by_text("Webhooks are managed by the project's admins.").wait_for(timeout=T)
        assert vpage.locator("main table, main input, main button").count() == 0
    finally:
        viewer.close()
        client.close()
