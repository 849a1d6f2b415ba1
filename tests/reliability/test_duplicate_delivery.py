"""At-least-once delivery means the cases worker sees the same event more than once (a relay
that crashed before deleting its outbox row, a redelivery after a lost ack). However often it
arrives, and whatever event id it carries, one referral opens one case."""
from __future__ import annotations

import uuid

from mend.referrals.v1 import referrals_pb2
from mend_cli.pytest_stack import referral_draft
from tests.support.mend import (CASES_CONSUMER, cases_per_referral, list_all_cases, metric_value, publish,
                                referral_received_envelope, rows, worker_metrics_url)
from tests.support.waiting import wait_for


def _handled(stack) -> float:
    """Events the cases worker finished with (opened a case, or recognised a duplicate)."""
    return metric_value(worker_metrics_url(stack), "mend_events_consumed_total", consumer=CASES_CONSUMER,
                        event_type="referral_received", outcome="ok")


def _processed_event_ids(stack, event_ids) -> set[str]:
    found = rows(stack, "cases", "SELECT event_id FROM processed_events WHERE consumer = :c",
                 c=CASES_CONSUMER)
    return {r.event_id for r in found} & set(event_ids)


def test_the_same_event_published_twice_opens_one_case(stack, tenant):
    envelope = referral_received_envelope(tenant.county, agency_id=tenant.agency_id)
    referral_id = envelope["payload"]["referral_id"]
    before = _handled(stack)

    publish(stack.amqp_uri, envelope)
    publish(stack.amqp_uri, envelope)

    wait_for(lambda: _handled(stack) >= before + 2, timeout=20)
    assert cases_per_referral(stack, [referral_id]) == {referral_id: 1}
    assert _processed_event_ids(stack, [envelope["event_id"]]) == {envelope["event_id"]}
    listed = list_all_cases(tenant.cases_client("coordinator"), tenant.county)
    assert [c.referral_id for c in listed] == [referral_id]


def test_two_event_ids_for_one_referral_open_one_case(stack, tenant):
    first = referral_received_envelope(tenant.county, agency_id=tenant.agency_id)
    referral_id = first["payload"]["referral_id"]
    second = dict(first, event_id=str(uuid.uuid4()), correlation_id=f"test{uuid.uuid4().hex}")
    before = _handled(stack)

    publish(stack.amqp_uri, first)
    publish(stack.amqp_uri, second)

    wait_for(lambda: _handled(stack) >= before + 2, timeout=20)
    assert cases_per_referral(stack, [referral_id]) == {referral_id: 1}
    # Both events were taken (one opened the case, the other recognised the referral).
    assert _processed_event_ids(stack, [first["event_id"], second["event_id"]]) == {first["event_id"],
                                                                                   second["event_id"]}


def test_a_burst_of_duplicates_of_a_real_referral_opens_one_case(stack, tenant):
    """A real submission, then its stored event replayed several times at once, some with fresh
    event ids: concurrent handlers race on the same referral and still open one case."""
    agency = tenant.agency_client()
    draft = referral_draft(tenant.county)
    submitted = agency.submit(draft, request_id=f"req-{uuid.uuid4().hex}")
    referral = wait_for(lambda: (r := agency.get(submitted.referral_id)).status
                        == referrals_pb2.REFERRAL_STATUS_CASE_OPENED and r, timeout=20)
    before = _handled(stack)

    original = referral_received_envelope(tenant.county, referral_id=submitted.referral_id,
                                          agency_id=tenant.agency_id, referral=draft)
    copies = [original] * 3 + [dict(original, event_id=str(uuid.uuid4())) for _ in range(5)]
    for envelope in copies:
        publish(stack.amqp_uri, envelope)

    wait_for(lambda: _handled(stack) >= before + len(copies), timeout=30)
    assert cases_per_referral(stack, [submitted.referral_id]) == {submitted.referral_id: 1}
    listed = list_all_cases(tenant.cases_client("coordinator"), tenant.county)
    assert [c.case_id for c in listed] == [referral.case_id]
    # The referral's status still names the one case it opened.
    assert agency.get(submitted.referral_id).case_id == referral.case_id
