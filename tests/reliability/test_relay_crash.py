"""The outbox relay runs as its own process (relay_in_api=False) and is killed with SIGKILL, at
rest and in the middle of a stream of submissions: every stored referral still opens exactly one
case, none is lost (rows leave the outbox only after a broker confirm) and none is doubled
(the consumer absorbs re-published events)."""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from mend.referrals.v1 import referrals_pb2
from mend_cli.pytest_stack import make_tenant, referral_draft
from tests.support.mend import cases_per_referral, list_all_cases, scalar
from tests.support.stacks import private_stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

RELAY = "referrals-relay"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def relay_stack(request, tmp_path_factory):
    with private_stack(tmp_path_factory, request, request.param, relay_in_api=False) as stack:
        yield stack


def _relay_starts(stack) -> int:
    return stack.process(RELAY).log_path.read_text(errors="replace").count("outbox relay running")


def _start_again(stack, name: str) -> None:
    """Start a killed process and wait until it is really running again (the relay has no
    readiness URL: its log says when it is)."""
    starts = _relay_starts(stack)
    process = stack.process(name)
    process.proc = None
    process.start().wait_ready(30)
    wait_for(lambda: _relay_starts(stack) > starts, timeout=30, interval=0.05)


def _all_have_one_case(stack, ids) -> bool:
    return all(n == 1 for n in cases_per_referral(stack, ids).values())


def test_events_stored_while_the_relay_is_dead_are_published_when_it_comes_back(relay_stack):
    stack = relay_stack
    tenant = make_tenant(stack)
    agency = tenant.agency_client()
    stack.process(RELAY).kill()
    try:
        ids = [agency.submit(referral_draft(tenant.county), request_id=f"req-{uuid.uuid4().hex}").referral_id
               for _ in range(8)]
        for rid in ids:
            assert agency.get(rid).status == referrals_pb2.REFERRAL_STATUS_RECEIVED
        time.sleep(1.0)
        assert cases_per_referral(stack, ids) == {rid: 0 for rid in ids}
        assert scalar(stack, "referrals", "SELECT count(*) FROM outbox") >= len(ids)
    finally:
        _start_again(stack, RELAY)
    wait_for(lambda: _all_have_one_case(stack, ids), timeout=30, interval=0.2)
    listed = list_all_cases(tenant.cases_client("coordinator"), tenant.county)
    assert sorted(c.referral_id for c in listed) == sorted(ids)
    wait_for(lambda: scalar(stack, "referrals", "SELECT count(*) FROM outbox") == 0, timeout=10)


def test_killing_the_relay_twice_mid_stream_loses_and_doubles_nothing(relay_stack):
    stack = relay_stack
    tenant = make_tenant(stack)
    agency = tenant.agency_client()
    total = 150
    marks = (total // 3, 2 * total // 3)        # kill the relay when this many are submitted
    restarted = [threading.Event() for _ in marks]
    submitted: list[str] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def submit_all():
        try:
            for i in range(total):
                # Keep going while the relay is down and restarting, but do not run out of
                # referrals before the next kill has happened.
                for mark, back in zip(marks, restarted):
                    if i == mark + 20 and not back.wait(60):
                        raise TimeoutError("the relay was not restarted in time")
                time.sleep(0.005)
                submitted.append(agency.submit(referral_draft(tenant.county),
                                               request_id=f"req-{uuid.uuid4().hex}").referral_id)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            done.set()

    feeder = threading.Thread(target=submit_all, name="feeder", daemon=True)
    feeder.start()
    try:
        for mark, back in zip(marks, restarted):
            wait_for(lambda: len(submitted) >= mark or done.is_set(), timeout=60, interval=0.005)
            assert not done.is_set(), f"submissions stopped early: {len(submitted)} submitted, errors: {errors}"
            stack.process(RELAY).kill()
            time.sleep(0.3)   # submissions go on piling up in the outbox meanwhile
            _start_again(stack, RELAY)
            back.set()
    finally:
        for back in restarted:
            back.set()
        assert done.wait(90), "the submissions did not finish"
        feeder.join(5)
    assert not errors, errors
    assert len(submitted) == total and len(set(submitted)) == total

    wait_for(lambda: _all_have_one_case(stack, submitted), timeout=60, interval=0.25)
    counts = cases_per_referral(stack, submitted)
    assert set(counts.values()) == {1}
    # The public view agrees: every referral exactly once, nothing else.
    coordinator = tenant.cases_client("coordinator")
    listed = list_all_cases(coordinator, tenant.county, page_size=200)
    assert len(listed) == total
    assert sorted(c.referral_id for c in listed) == sorted(submitted)
    assert len({c.case_id for c in listed}) == total
    # ...and paging through smaller pages returns the same set, with no repeats or gaps.
    paged = list_all_cases(coordinator, tenant.county, page_size=23)
    assert [c.case_id for c in paged] == [c.case_id for c in listed]
    wait_for(lambda: scalar(stack, "referrals", "SELECT count(*) FROM outbox") == 0, timeout=15)
