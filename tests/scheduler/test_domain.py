"""Job decisions (pure): fencing of stale attempts, retries, losses, cancellation."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.services.scheduler import domain

SPEC = {"max_retries": 1, "nodes": 1}


def fold(*events: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    state = None
    for event_type, data in events:
        state = domain.evolve_job(state, event_type, data)
    assert state is not None
    return state


SUBMITTED = ("job.submitted", {"spec": SPEC, "run_id": "r"})
ASSIGNED = ("job.assigned", {"attempt": 1, "ranks": [{"rank": 0, "agent_id": "a", "host": "h"}],
                             "master_addr": "h", "master_port": 1})


def test_a_report_for_an_old_attempt_or_another_agent_is_refused() -> None:
    state = fold(SUBMITTED, ASSIGNED, ("job.lost", {"attempt": 1, "agent_id": "a"}),
                 ("job.retried", {"attempt": 2, "previous_attempt": 1, "exit_code": None, "reason": "lost",
                                  "message": ""}))
    with pytest.raises(domain.StaleReport):
        domain.finish_rank(state, job_id="j", attempt=1, agent_id="a", rank=0, exit_code=0, reason="exit")
    state = fold(SUBMITTED, ASSIGNED)
    with pytest.raises(domain.StaleReport):
        domain.start_job(state, job_id="j", attempt=1, agent_id="intruder", rank=0, started_at=0)


def test_an_exit_report_on_an_attempt_already_decided_records_nothing_and_is_not_refused() -> None:
    exited = ("job.succeeded", {"attempt": 1, "exit_code": 0})
    state = fold(SUBMITTED, ASSIGNED, exited)
    assert domain.finish_rank(state, job_id="j", attempt=1, agent_id="a", rank=0, exit_code=0, reason="exit") is None
    with pytest.raises(domain.StaleReport):  # but not from an agent the attempt never had
        domain.finish_rank(state, job_id="j", attempt=1, agent_id="b", rank=0, exit_code=0, reason="exit")
    with pytest.raises(domain.StaleReport):  # nor a start: that process must stop
        domain.start_job(state, job_id="j", attempt=1, agent_id="a", rank=0, started_at=0)


def test_a_failure_is_retried_until_max_retries_then_the_job_fails() -> None:
    state = fold(SUBMITTED, ASSIGNED)
    decision = domain.finish_rank(state, job_id="j", attempt=1, agent_id="a", rank=0, exit_code=2, reason="exit")
    assert decision is not None and decision[0] == "job.retried" and decision[1]["attempt"] == 2
    state = fold(SUBMITTED, ASSIGNED, decision,
                 ("job.assigned", {**ASSIGNED[1], "attempt": 2}))
    decision = domain.finish_rank(state, job_id="j", attempt=2, agent_id="a", rank=0, exit_code=2, reason="exit")
    assert decision is not None and decision[0] == "job.failed"


def test_lost_attempts_do_not_use_up_max_retries() -> None:
    state = fold(SUBMITTED, ASSIGNED, ("job.lost", {"attempt": 1, "agent_id": "a"}))
    decision = domain.requeue_lost(state, job_id="j")
    assert decision is not None and decision[0] == "job.retried" and decision[1]["reason"] == "lost"
    assert fold(SUBMITTED, ASSIGNED, ("job.lost", {"attempt": 1, "agent_id": "a"}), decision)["failures"] == 0


def test_cancel_ends_a_queued_job_at_once_and_asks_a_running_one_to_stop() -> None:
    decision = domain.cancel_job(fold(SUBMITTED), job_id="j")
    assert decision is not None and decision[0] == "job.cancelled"
    running = fold(SUBMITTED, ASSIGNED)
    decision = domain.cancel_job(running, job_id="j")
    assert decision is not None and decision[0] == "job.cancel_requested"
    stopping = fold(SUBMITTED, ASSIGNED, decision)
    ended = domain.finish_rank(stopping, job_id="j", attempt=1, agent_id="a", rank=0, exit_code=-15, reason="exit")
    assert ended is not None and ended[0] == "job.cancelled"
    assert domain.cancel_job(fold(SUBMITTED, ASSIGNED, ("job.succeeded", {"attempt": 1, "exit_code": 0})),
                             job_id="j") is None


def test_a_group_succeeds_only_when_every_rank_exited_zero() -> None:
    ranks = [{"rank": 0, "agent_id": "a", "host": "h"}, {"rank": 1, "agent_id": "b", "host": "h"}]
    state = fold(SUBMITTED, ("job.assigned", {**ASSIGNED[1], "ranks": ranks}))
    first = domain.finish_rank(state, job_id="j", attempt=1, agent_id="b", rank=1, exit_code=0, reason="exit")
    assert first is not None and first[0] == "job.rank_exited"
    state = fold(SUBMITTED, ("job.assigned", {**ASSIGNED[1], "ranks": ranks}), first)
    last = domain.finish_rank(state, job_id="j", attempt=1, agent_id="a", rank=0, exit_code=0, reason="exit")
    assert last is not None and last[0] == "job.succeeded"
