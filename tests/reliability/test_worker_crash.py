"""The cases worker takes events in batches. It is killed (SIGKILL) or stopped (SIGTERM) while a
burst is queued, in flight and waiting to join a batch: once it is back, every referral has
exactly one case. Nothing is lost, because a message is acknowledged only after its batch has
committed; nothing is doubled, because the processed-events claim absorbs redeliveries."""
from __future__ import annotations

import time
import uuid

import pytest

from tests.support.mend import CASES_QUEUE, cases_per_referral, publish_many, referral_received_envelope
from tests.support.stacks import private_stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

WORKER = "cases-worker"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def worker_stack(request, tmp_path_factory):
    # Small batches and a long linger: at any moment some events are committed, some in a batch
    # being written and some still waiting to join one.
    with private_stack(tmp_path_factory, request, request.param,
                       extra_env={"MEND_EVENT_BATCH_SIZE": "10", "MEND_EVENT_BATCH_LINGER_MS": "50"}) as stack:
        yield stack


def _burst(stack, tenant_county: str, agency_id: str, n: int) -> list[str]:
    events = [referral_received_envelope(tenant_county, agency_id=agency_id) for _ in range(n)]
    publish_many(stack.amqp_uri, events)
    return [e["payload"]["referral_id"] for e in events]


def _some_but_not_all_opened(stack, ids) -> bool:
    opened = sum(cases_per_referral(stack, ids).values())
    return 0 < opened < len(ids)


def _queue_drained(stack) -> bool:
    info = stack.vhost.queue(CASES_QUEUE) or {}
    return info.get("messages") == 0 and info.get("messages_unacknowledged") == 0


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_worker_that_dies_mid_burst_loses_and_doubles_nothing(worker_stack, how):
    stack = worker_stack
    county, agency_id = "cumbria", str(uuid.uuid4())
    ids = _burst(stack, county, agency_id, 400)
    wait_for(lambda: _some_but_not_all_opened(stack, ids), timeout=30, interval=0.01)
    worker = stack.process(WORKER)
    if how == "kill":
        worker.kill()
    else:
        worker.stop()
    before_restart = cases_per_referral(stack, ids)
    assert set(before_restart.values()) <= {0, 1}
    time.sleep(0.5)
    worker.proc = None
    worker.start().wait_ready(60)

    wait_for(lambda: set(cases_per_referral(stack, ids).values()) == {1}, timeout=60, interval=0.25)
    wait_for(lambda: _queue_drained(stack), timeout=30, interval=0.5)
    assert set(cases_per_referral(stack, ids).values()) == {1}
