"""Trigger primitives: GitHub and GitLab push payloads, their signatures, branch/tag/path filters,
and filters over events of record with the subject a consumer reads."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from cairn.kernel.envelope import subject_for, subject_matches
from cairn.kernel.errors import BadRequest, InvalidInput, Unauthorized
from cairn.pipelines.triggers import (
    ZERO_SHA,
    EventFilter,
    Ping,
    PushEvent,
    PushFilter,
    event_matches,
    glob_matches,
    matches,
    parse_push,
    verify_github,
    verify_gitlab,
)

BEFORE, AFTER = "6113728f27ae82c7b1a177c8d03f9e96e0adf246", "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"


def github_push(ref: str = "refs/heads/main", after: str = AFTER, paths: tuple[str, ...] = ("train.py",)) -> bytes:
    commit = {"id": after, "message": "retrain", "author": {"name": "Ada", "email": "ada@example.com"},
              "added": [p for p in paths if p.startswith("new")], "removed": [],
              "modified": [p for p in paths if not p.startswith("new")]}
    return json.dumps({
        "ref": ref, "before": BEFORE, "after": after, "created": False, "deleted": after == ZERO_SHA,
        "forced": False, "compare": "https://github.com/acme/fraud/compare/6113728f27ae...0d1a26e67d8f",
        "commits": [] if after == ZERO_SHA else [commit], "head_commit": None if after == ZERO_SHA else commit,
        "repository": {"id": 1296269, "name": "fraud", "full_name": "acme/fraud",
                       "clone_url": "https://github.com/acme/fraud.git", "default_branch": "main"},
        "pusher": {"name": "ada", "email": "ada@example.com"}, "sender": {"login": "ada", "id": 1},
    }).encode()


def gitlab_push(ref: str = "refs/heads/main", after: str = AFTER, kind: str = "push") -> bytes:
    commits = [] if after == ZERO_SHA else [
        {"id": after, "message": "retrain", "added": ["data/new.csv"], "modified": ["src/train.py"],
         "removed": ["docs/old.md"]}]
    return json.dumps({
        "object_kind": kind, "event_name": kind, "before": BEFORE, "after": after, "ref": ref,
        "checkout_sha": None if after == ZERO_SHA else after, "user_name": "Ada Lovelace",
        "user_username": "ada", "project_id": 15,
        "project": {"id": 15, "name": "fraud", "path_with_namespace": "acme/fraud",
                    "git_http_url": "http://gitlab.example.com/acme/fraud.git", "default_branch": "main"},
        "commits": commits, "total_commits_count": len(commits),
    }).encode()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parsed(headers: dict[str, str], body: bytes) -> PushEvent:
    event = parse_push(headers, body)
    assert isinstance(event, PushEvent)
    return event


# --- payloads ------------------------------------------------------------------------------------

def test_a_github_push_is_read_with_its_commit_repository_and_paths() -> None:
    event = parsed({"X-GitHub-Event": "push"}, github_push(paths=("src/train.py", "new/feature.py")))
    assert (event.source, event.branch, event.tag, event.deleted) == ("github", "main", None, False)
    assert (event.before, event.after, event.head_commit) == (BEFORE, AFTER, AFTER)
    assert (event.repository, event.clone_url, event.pusher) == (
        "acme/fraud", "https://github.com/acme/fraud.git", "ada")
    assert event.paths == {"src/train.py", "new/feature.py"}


def test_a_gitlab_push_is_read_with_checkout_sha_and_every_changed_path() -> None:
    event = parsed({"X-Gitlab-Event": "Push Hook"}, gitlab_push())
    assert (event.source, event.branch, event.head_commit, event.pusher) == ("gitlab", "main", AFTER, "ada")
    assert (event.repository, event.clone_url) == ("acme/fraud", "http://gitlab.example.com/acme/fraud.git")
    assert event.paths == {"data/new.csv", "src/train.py", "docs/old.md"}


def test_tag_pushes_and_branch_deletions_are_told_apart() -> None:
    tag = parsed({"X-GitHub-Event": "push"}, github_push(ref="refs/tags/v1.2"))
    assert (tag.tag, tag.branch, tag.deleted) == ("v1.2", None, False)
    gone = parsed({"X-GitHub-Event": "push"}, github_push(ref="refs/heads/old", after=ZERO_SHA))
    assert (gone.branch, gone.deleted, gone.head_commit, gone.paths) == ("old", True, None, frozenset())
    gitlab_tag = parsed({"X-Gitlab-Event": "Tag Push Hook"}, gitlab_push(ref="refs/tags/v2", kind="tag_push"))
    assert gitlab_tag.tag == "v2"
    gitlab_gone = parsed({"X-Gitlab-Event": "Push Hook"}, gitlab_push(after=ZERO_SHA))
    assert gitlab_gone.deleted and gitlab_gone.head_commit is None


def test_a_github_ping_is_recognised_as_a_ping() -> None:
    body = json.dumps({"zen": "Design for failure.", "hook_id": 42, "hook": {"type": "Repository"}}).encode()
    assert parse_push({"x-github-event": "ping"}, body) == Ping("github", "42")


@pytest.mark.parametrize("headers, body, message", [
    ({"X-GitHub-Event": "issues"}, b"{}", "'issues' is not handled"),
    ({"X-Gitlab-Event": "Merge Request Hook"}, b"{}", "'Merge Request Hook' is not handled"),
    ({"Content-Type": "application/json"}, b"{}", "no X-GitHub-Event or X-Gitlab-Event"),
    ({"X-GitHub-Event": "push"}, b"payload=%7B%7D", "not JSON"),
    ({"X-GitHub-Event": "push"}, b"[]", "JSON object"),
    ({"X-GitHub-Event": "push"}, json.dumps({"ref": "refs/heads/main"}).encode(), "no before"),
    ({"X-Gitlab-Event": "Push Hook"}, json.dumps({"ref": "r", "before": BEFORE, "after": AFTER}).encode(),
     "no project.path_with_namespace"),
])
def test_other_events_and_malformed_bodies_are_refused_saying_why(
        headers: dict[str, str], body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_push(headers, body)


# --- signatures ----------------------------------------------------------------------------------

def test_a_github_body_signed_with_the_secret_verifies() -> None:
    body = github_push()
    verify_github("s3cret", body, sign("s3cret", body))
    verify_github(b"s3cret", body, sign("s3cret", body))


@pytest.mark.parametrize("header, reason", [
    (None, "missing"), ("", "missing"), ("sha1=" + "0" * 40, "malformed"), ("sha256=xyz", "malformed"),
    ("sha256=" + "A" * 64, "malformed"),
])
def test_a_missing_or_malformed_github_signature_is_refused_with_a_reason(header: str | None, reason: str) -> None:
    with pytest.raises(Unauthorized, match=reason):
        verify_github("s3cret", github_push(), header)


def test_a_wrong_secret_or_a_changed_body_does_not_verify() -> None:
    body = github_push()
    with pytest.raises(Unauthorized, match="does not match"):
        verify_github("s3cret", body, sign("other", body))
    with pytest.raises(Unauthorized, match="does not match"):
        verify_github("s3cret", body.replace(b"main", b"evil"), sign("s3cret", body))


def test_a_gitlab_token_must_be_present_and_equal() -> None:
    verify_gitlab("tok-123", "tok-123")
    with pytest.raises(Unauthorized, match="missing"):
        verify_gitlab("tok-123", None)
    with pytest.raises(Unauthorized, match="does not match"):
        verify_gitlab("tok-123", "tok-124")


# --- branch, tag and path filters ----------------------------------------------------------------

@pytest.mark.parametrize("patterns, name, selected", [
    (["main"], "main", True), (["main"], "mainline", False),
    (["release/*"], "release/1.0", True), (["release/*"], "release/1.0/hotfix", False),
    (["release/**"], "release/1.0/hotfix", True),
    (["**/*.py"], "train.py", True), (["**/*.py"], "src/models/train.py", True), (["*.py"], "src/train.py", False),
    (["**", "!docs/**"], "docs/index.md", False), (["**", "!docs/**"], "src/a.py", True),
    (["!docs/**"], "README.md", True), (["!docs/**"], "docs/a.md", False),
    (["**", "!docs/**", "docs/api/**"], "docs/api/x.md", True),  # last match wins
    (["v?"], "v1", True), (["v?"], "v10", False), (["a.b"], "axb", False),
])
def test_globs_follow_github_actions(patterns: list[str], name: str, selected: bool) -> None:
    assert glob_matches(patterns, name) is selected


def test_a_push_matches_by_branch_and_by_at_least_one_selected_path() -> None:
    push = parsed({"X-GitHub-Event": "push"}, github_push(ref="refs/heads/release/2.0", paths=("src/a.py", "docs/x.md")))
    assert matches(push, PushFilter())
    assert matches(push, PushFilter(branches=("main", "release/*")))
    assert not matches(push, PushFilter(branches=("main",)))
    assert matches(push, PushFilter(paths=("**/*.py",)))
    assert not matches(push, PushFilter(paths=("**/*.md", "!docs/**")))
    docs_only = parsed({"X-GitHub-Event": "push"}, github_push(paths=("docs/a.md",)))
    assert not matches(docs_only, PushFilter(paths=("**", "!docs/**")))


def test_tags_match_only_tag_patterns_and_deletions_never_match() -> None:
    tag = parsed({"X-GitHub-Event": "push"}, github_push(ref="refs/tags/v1.2"))
    assert not matches(tag, PushFilter(branches=("**",)))
    assert matches(tag, PushFilter(tags=("v*",)))
    gone = parsed({"X-GitHub-Event": "push"}, github_push(after=ZERO_SHA))
    assert not matches(gone, PushFilter())


def test_push_filter_specs_are_validated_naming_the_key() -> None:
    assert PushFilter.from_spec({"branches": "main", "paths": ["**/*.py"]}) == PushFilter(("main",), (), ("**/*.py",))
    with pytest.raises(InvalidInput, match="unknown keys") as info:
        PushFilter.from_spec({"branch": ["main"]})
    assert info.value.details["field"] == "branch"
    with pytest.raises(InvalidInput, match="'paths' must be a list") as info:
        PushFilter.from_spec({"paths": [3]})


# --- event filters -------------------------------------------------------------------------------

DATASET = {"version": 3, "manifest_digest": "sha256:" + "a" * 64, "files": 2, "total_size": 10, "description": ""}
ALERT = {"rule_id": "r1", "deployment": "fraud", "monitor": "fraud-drift", "action": "rollback"}


def test_a_dataset_filter_matches_its_dataset_by_name_from_the_aggregate_id() -> None:
    f = EventFilter.from_spec({"type": "dataset.version_created", "where": {"data.name": "fraud"}})
    assert event_matches(f, "dataset.version_created", DATASET, aggregate_id="fraud")
    assert not event_matches(f, "dataset.version_created", DATASET, aggregate_id="churn")
    assert not event_matches(f, "run.created", DATASET, aggregate_id="fraud")
    assert f.subject("acme") == "cairn.evt.acme.dataset.fraud"
    assert subject_matches(f.subject(), subject_for("acme", "dataset", "fraud"))
    assert not subject_matches(f.subject(), subject_for("acme", "dataset", "churn"))


def test_an_alert_filter_matches_on_the_event_body_and_reads_alert_subjects() -> None:
    f = EventFilter.from_spec({"type": "alert.fired", "where": {"data.deployment": "fraud"}})
    assert event_matches(f, "alert.fired", ALERT)
    assert not event_matches(f, "alert.fired", {**ALERT, "deployment": "churn"})
    assert not event_matches(f, "alert.resolved", ALERT)
    assert f.subject() == "cairn.evt.*.alert.>"
    assert subject_matches(f.subject(), subject_for("acme", "alert", "r1"))


def test_wildcard_types_lists_of_values_nested_paths_and_unknown_aggregates() -> None:
    f = EventFilter.from_spec({"type": "model_version.*", "where": {"data.alias": ["champion", "prod"]}})
    assert event_matches(f, "model_version.alias_set", {"alias": "prod", "version": 2})
    assert not event_matches(f, "model_version.alias_set", {"alias": "dev", "version": 2})
    assert not event_matches(f, "model_version.created", {"version": 2})  # no alias: no match
    assert f.subject("acme") == "cairn.evt.acme.model.>"
    nested = EventFilter.from_spec({"type": "run.finished", "where": {"data.metrics.auc": 1}})
    assert event_matches(nested, "run.finished", {"metrics": {"auc": 1}})
    assert nested.subject() == "cairn.evt.*.>"


@pytest.mark.parametrize("spec, field", [
    ({"type": "dataset"}, "type"), ({"type": "Dataset.Created"}, "type"), ({}, "type"),
    ({"type": "alert.fired", "where": {"deployment": "x"}}, "where"),
    ({"type": "alert.fired", "where": {"data.x": {"gt": 1}}}, "where"),
    ({"type": "alert.fired", "where": ["data.x"]}, "where"),
    ({"type": "alert.fired", "filter": {}}, "filter"),
])
def test_bad_event_filters_are_refused_naming_the_key(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        EventFilter.from_spec(spec)
    assert info.value.details["field"] == field
