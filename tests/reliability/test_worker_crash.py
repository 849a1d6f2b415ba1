"""The cases worker takes events in batches. It is killed (SIGKILL) or stopped (SIGTERM) while a
burst is queued, in flight and waiting to join a batch: once it is back, every referral has
exactly one case. Nothing is lost, because a message is acknowledged only after its batch has
committed; nothing is doubled, because the processed-events claim absorbs redeliveries."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from tests.support.mend import CASES_QUEUE, cases_per_referral, publish_many, referral_received_envelope, service_db
from tests.support.stacks import private_stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

WORKER = "cases-worker"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def worker_stack(request, tmp_path_factory):
    # Small batches and a long linger: at any moment some events are committed, some in a batch
    # being written and some still waiting to join one.
    with private_stack(tmp_path_factory, request, request.param,
                       extra_env={"MEND_EVENT_BATCH_SIZE": "10", "MEND_EVENT_BATCH_LINGER_MS": "50",
                                  "MEND_EVENT_BATCH_CONCURRENCY": "1"}) as stack:
        yield stack


def _burst(stack, county: str, agency_id: str, n: int, on_progress) -> list[str]:
    """Publish n events in chunks, returning once on_progress() says the worker is under way
    (the rest are published before returning, so the worker dies with a queue full of work)."""
    events = [referral_received_envelope(county, agency_id=agency_id) for _ in range(n)]
    first, rest = events[:100], events[100:]
    publish_many(stack.amqp_uri, first)
    wait_for(on_progress, timeout=30, interval=0.005)
    publish_many(stack.amqp_uri, rest)
    return [e["payload"]["referral_id"] for e in events]


def _queue_drained(stack) -> bool:
    info = stack.vhost.queue(CASES_QUEUE) or {}
    return info.get("messages") == 0 and info.get("messages_unacknowledged") == 0


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_worker_that_dies_mid_burst_loses_and_doubles_nothing(worker_stack, how):
    stack = worker_stack
    county, agency_id = "cumbria", str(uuid.uuid4())
    worker = stack.process(WORKER)
    with service_db(stack, "cases") as db, db.engine.connect() as conn:
        def opened() -> int:
            count = conn.execute(text("SELECT count(*) FROM cases WHERE referring_agency_id = :agency"),
                                 {"agency": agency_id}).scalar()
            conn.rollback()   # a fresh snapshot for the next look
            return count

        # The worker takes the burst while it is still being published: stop it as soon as the
        # first cases are committed, with most of the burst still to come.
        ids = _burst(stack, county, agency_id, 1500, on_progress=lambda: opened() > 0)
        if how == "kill":
            worker.kill()
        else:
            worker.stop()
        at_stop = opened()
    assert 0 < at_stop < len(ids), at_stop
    assert set(cases_per_referral(stack, ids).values()) <= {0, 1}
    worker.proc = None
    worker.start().wait_ready(60)

    wait_for(lambda: set(cases_per_referral(stack, ids).values()) == {1}, timeout=90, interval=0.5)
    wait_for(lambda: _queue_drained(stack), timeout=30, interval=0.5)
    assert set(cases_per_referral(stack, ids).values()) == {1}
