"""A message the cases worker can never handle must not block the queue nor crash the worker:
it is retried a bounded number of times (MEND_MAX_DELIVERY_ATTEMPTS, 3 in tests), then parked
in the dead-letter queue with the attempts recorded, while good events keep flowing."""
from __future__ import annotations

import json
import uuid

import requests

from mend_cli.pytest_stack import referral_draft
from tests.support.mend import (CASES_CONSUMER, CASES_DLQ, CASES_QUEUE, cases_per_referral, metric_value, publish,
                                publish_many, referral_received_envelope, worker_metrics_url)
from tests.support.waiting import wait_for

MAX_ATTEMPTS = 3  # pytest_stack.TEST_ENV


def _dead_lettered(stack) -> float:
    return metric_value(worker_metrics_url(stack), "mend_dead_lettered_total", consumer=CASES_CONSUMER,
                        event_type="referral_received")


def _parked(stack, message_id: str) -> dict | None:
    """The message with this id in the dead-letter queue (peeked, left in place), if there."""
    for message in stack.vhost.get_messages(CASES_DLQ, count=100):
        if (message.get("properties") or {}).get("message_id") == message_id:
            return message
    return None


def _main_queue_drained(stack) -> bool:
    info = stack.vhost.queue(CASES_QUEUE) or {}
    return info.get("messages") == 0 and info.get("messages_unacknowledged") == 0 and info.get("consumers", 0) >= 1


def _worker_alive(stack) -> bool:
    worker = stack.process("cases-worker")
    if worker.proc.poll() is not None:
        return False
    ready = requests.get(f"http://127.0.0.1:{stack.ports['cases'].worker_http[0]}/readyz", timeout=5)
    return ready.status_code == 200


def test_poison_event_is_dead_lettered_after_bounded_attempts_and_good_events_flow(stack, tenant):
    dead_before = _dead_lettered(stack)
    poison_draft = referral_draft(tenant.county)
    del poison_draft["offence"]
    poison = referral_received_envelope(tenant.county, agency_id=tenant.agency_id, referral=poison_draft)
    good = referral_received_envelope(tenant.county, agency_id=tenant.agency_id)

    publish(stack.amqp_uri, poison)
    publish(stack.amqp_uri, good)

    # The good event opens its case without waiting for the poison to be given up on.
    good_id, poison_id = good["payload"]["referral_id"], poison["payload"]["referral_id"]
    wait_for(lambda: cases_per_referral(stack, [good_id])[good_id] == 1, timeout=20)

    parked = wait_for(lambda: _parked(stack, poison["event_id"]), timeout=20, interval=0.2)
    headers = parked["properties"]["headers"]
    assert headers["x-mend-attempts"] == MAX_ATTEMPTS
    assert headers["x-mend-original-queue"] == CASES_QUEUE
    assert "offence" in headers["x-mend-error"]
    assert "x-death" not in headers
    assert poison["event_id"] in parked["payload"]  # the body is kept as it was sent

    wait_for(lambda: _dead_lettered(stack) >= dead_before + 1, timeout=10)
    wait_for(lambda: _main_queue_drained(stack), timeout=20, interval=0.5)
    assert cases_per_referral(stack, [poison_id, good_id]) == {poison_id: 0, good_id: 1}
    assert _worker_alive(stack)


def _batches(stack) -> tuple[float, float]:
    """(batches handled, events in them) by the cases worker."""
    url = worker_metrics_url(stack)
    labels = {"consumer": CASES_CONSUMER, "event_type": "referral_received"}
    return (metric_value(url, "mend_event_batch_size_count", **labels),
            metric_value(url, "mend_event_batch_size_sum", **labels))


def test_a_poison_event_in_a_burst_fails_alone_and_every_other_event_opens_its_case(stack, tenant):
    """Events that queue up are handled in batches, one transaction each. A batch holding a poison
    event fails as a whole, then its events are handled one by one: only the poison is retried
    and parked, and no good event is lost or opened twice."""
    batches_before, events_before = _batches(stack)
    poison_draft = referral_draft(tenant.county)
    del poison_draft["participants"]
    poison = referral_received_envelope(tenant.county, agency_id=tenant.agency_id, referral=poison_draft)
    good = [referral_received_envelope(tenant.county, agency_id=tenant.agency_id) for _ in range(60)]
    burst = good[:30] + [poison] + good[30:] + good[10:20]      # with ten redeliveries in the burst

    publish_many(stack.amqp_uri, burst)

    good_ids = [g["payload"]["referral_id"] for g in good]
    wait_for(lambda: set(cases_per_referral(stack, good_ids).values()) == {1}, timeout=30, interval=0.3)
    parked = wait_for(lambda: _parked(stack, poison["event_id"]), timeout=30, interval=0.2)
    assert parked["properties"]["headers"]["x-mend-attempts"] == MAX_ATTEMPTS
    wait_for(lambda: _main_queue_drained(stack), timeout=20, interval=0.5)
    poison_id = poison["payload"]["referral_id"]
    assert cases_per_referral(stack, good_ids + [poison_id]) == {**{g: 1 for g in good_ids}, poison_id: 0}
    batches, events = _batches(stack)
    assert events - events_before >= len(burst)
    assert batches - batches_before < events - events_before, "the burst was never batched"
    assert _worker_alive(stack)


def _check_parked_and_worker_alive(stack, tenant, body, message_id: str,
                                   content_type: str = "application/json") -> None:
    dead_before = _dead_lettered(stack)
    publish(stack.amqp_uri, body, message_id=message_id, content_type=content_type)
    parked = wait_for(lambda: _parked(stack, message_id), timeout=20, interval=0.2)
    assert parked["properties"]["headers"]["x-mend-attempts"] == MAX_ATTEMPTS
    wait_for(lambda: _dead_lettered(stack) >= dead_before + 1, timeout=10)
    # The worker is still up and still opens cases.
    assert _worker_alive(stack)
    good = referral_received_envelope(tenant.county, agency_id=tenant.agency_id)
    publish(stack.amqp_uri, good)
    good_id = good["payload"]["referral_id"]
    wait_for(lambda: cases_per_referral(stack, [good_id])[good_id] == 1, timeout=20)


def test_a_body_that_is_not_a_json_object_is_dead_lettered(stack, tenant):
    _check_parked_and_worker_alive(stack, tenant, "[]", f"not-an-object-{uuid.uuid4().hex}")


def test_an_envelope_without_event_id_is_dead_lettered(stack, tenant):
    envelope = referral_received_envelope(tenant.county, agency_id=tenant.agency_id)
    del envelope["event_id"]
    _check_parked_and_worker_alive(stack, tenant, envelope, f"no-event-id-{uuid.uuid4().hex}")


def test_a_body_that_is_not_json_at_all_is_dead_lettered(stack, tenant):
    """A foreign or broken publisher must not be able to take the consumer down."""
    _check_parked_and_worker_alive(stack, tenant, "this is {not json", f"not-json-{uuid.uuid4().hex}")


def test_a_body_of_a_content_type_the_worker_does_not_accept_is_dead_lettered(stack, tenant):
    """Only JSON is accepted (never pickle); anything else is parked, not dropped or decoded."""
    envelope = referral_received_envelope(tenant.county, agency_id=tenant.agency_id)
    _check_parked_and_worker_alive(stack, tenant, json.dumps(envelope), f"pickle-{uuid.uuid4().hex}",
                                   content_type="application/x-python-serialize")
    assert cases_per_referral(stack, [envelope["payload"]["referral_id"]]) == {envelope["payload"]["referral_id"]: 0}
