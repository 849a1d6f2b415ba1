"""A referral travels from a partner agency to an open case, over real gRPC, RabbitMQ and a
database (each test runs on SQLite and on PostgreSQL)."""
from __future__ import annotations

import time
import uuid

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mend.referrals.v1 import referrals_pb2
from mend_cli.pytest_stack import referral_draft
from tests.support.waiting import wait_for


def test_submitted_referral_opens_a_case_and_the_status_follows(tenant):
    agency = tenant.agency_client()
    draft = referral_draft(tenant.county)
    submitted = agency.submit(draft, request_id=f"req-{uuid.uuid4().hex}")
    assert submitted.status == referrals_pb2.REFERRAL_STATUS_RECEIVED
    assert not submitted.replayed

    referral = wait_for(lambda: (r := agency.get(submitted.referral_id)).status
                        == referrals_pb2.REFERRAL_STATUS_CASE_OPENED and r)
    assert referral.case_id
    assert [h.status for h in referral.history] == [referrals_pb2.REFERRAL_STATUS_RECEIVED,
                                                   referrals_pb2.REFERRAL_STATUS_CASE_OPENED]

    case = tenant.cases_client("coordinator").get(referral.case_id)
    assert case.referral_id == submitted.referral_id
    assert case.county == tenant.county
    assert case.stage == 1  # STAGE_REFERRAL_RECEIVED
    assert case.agency_reference == draft["agency_reference"]
    by_role = {p.role: p for p in case.participants}
    assert set(by_role) == {"victim", "responsible_person", "parent_or_guardian"}
    assert by_role["responsible_person"].is_youth and not by_role["victim"].is_youth
    assert by_role["victim"].vulnerabilities == ["intimidated"]
    assert by_role["victim"].consent_to_contact

    listed = tenant.cases_client("coordinator").list(county=tenant.county)
    assert [c.case_id for c in listed.cases] == [referral.case_id]


def test_same_request_id_replays_and_different_payload_conflicts(tenant):
    agency = tenant.agency_client()
    draft = referral_draft(tenant.county)
    request_id = f"req-{uuid.uuid4().hex}"
    first = agency.submit(draft, request_id=request_id)
    again = agency.submit(draft, request_id=request_id)
    assert again.referral_id == first.referral_id and again.replayed
    changed = dict(draft, reason="something else entirely")
    with pytest.raises(grpc.RpcError) as err:
        agency.submit(changed, request_id=request_id)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    # Only one case, however often it was sent.
    case_id = wait_for(lambda: agency.get(first.referral_id).case_id)
    listed = tenant.cases_client("coordinator").list(county=tenant.county)
    assert [c.case_id for c in listed.cases] == [case_id]


def test_http_intake_with_idempotency_key(tenant):
    base = tenant.stack.http_base("referrals")
    headers = {"x-api-key": tenant.api_key, "Idempotency-Key": f"http-{uuid.uuid4().hex}"}
    draft = referral_draft(tenant.county)
    created = requests.post(f"{base}/v1/referrals", json=draft, headers=headers, timeout=10)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "received" and created.headers["Location"].endswith(body["referral_id"])
    replay = requests.post(f"{base}/v1/referrals", json=draft, headers=headers, timeout=10)
    assert replay.status_code == 200 and replay.json()["referral_id"] == body["referral_id"]
    conflict = requests.post(f"{base}/v1/referrals", json=dict(draft, reason="other"), headers=headers, timeout=10)
    assert conflict.status_code == 409
    status = wait_for(lambda: (r := requests.get(f"{base}/v1/referrals/{body['referral_id']}",
                                                headers={"x-api-key": tenant.api_key}, timeout=10).json())
                      ["status"] == "case_opened" and r)
    assert status["case_id"]


def test_health_metrics_and_correlation_id(stack, tenant):
    for service in ("referrals", "cases"):
        channel = grpc.insecure_channel(stack.grpc_target(service))
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert requests.get(f"{stack.http_base(service)}/healthz", timeout=5).status_code == 200
        assert requests.get(f"{stack.http_base(service)}/readyz", timeout=5).json()["ready"] is True
    correlation_id = f"corr{uuid.uuid4().hex}"
    agency = tenant.agency_client()
    agency.md = agency.md + (("x-correlation-id", correlation_id),)
    submitted = agency.submit(referral_draft(tenant.county))
    wait_for(lambda: agency.get(submitted.referral_id).case_id)
    metrics = requests.get(f"{stack.http_base('referrals')}/metrics", timeout=5).text
    assert f'mend_referrals_received_total{{county="{tenant.county}"}} 1.0' in metrics
    assert "mend_grpc_request_seconds_bucket" in metrics
    worker_metrics = requests.get(f"http://127.0.0.1:{stack.ports['cases'].worker_http[0]}/metrics", timeout=5).text
    assert f'mend_cases_opened_total{{county="{tenant.county}"}} 1.0' in worker_metrics
    # The id the agency sent is in the logs of the api that took the call and of the worker
    # that opened the case from the event.
    wait_for(lambda: correlation_id in stack.process("cases-worker").log_path.read_text(), timeout=10)
    assert correlation_id in stack.process("referrals-api").log_path.read_text()
