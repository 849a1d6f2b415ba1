"""The risk service over the running region (real gRPC, RabbitMQ, nameko workers, a database; each
module on SQLite and on PostgreSQL): assessments by the rules, four-eyes approval, the safety gate
over gRPC and nameko RPC, lapsing on new information and on withdrawal, events, and bad input."""
from __future__ import annotations

import json
import uuid

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mend.risk.v1 import risk_pb2
from mend_common.rpc import RpcClient, RpcError
from mend_common.safety import ask_safety_gate
from mend_common.testing.plugin import RabbitVhost
from tests.support.case_flow import Cases, opened_case, parties, refused, to_risk_and_safety
from tests.support.mend import metric_value
from tests.support.waiting import wait_for

DIRECT = ["co_facilitation", "separate_arrival_and_waiting", "supporter_present", "prison_venue",
          "specialist_facilitator"]


def case_at_risk_and_safety(tenant, **overrides):
    cases = Cases(tenant)
    _, case_id = opened_case(tenant, **overrides)
    return to_risk_and_safety(cases, case_id)


@pytest.fixture
def events(stack):
    """Every risk event published in this region, read from a queue of the test's own."""
    import kombu
    name = f"test-risk-events-{uuid.uuid4().hex[:8]}"
    with kombu.Connection(stack.amqp_uri) as conn:
        queue = kombu.Queue(name, kombu.Exchange("risk.events", "topic", durable=True), routing_key="#",
                            durable=False, auto_delete=False)
        queue(conn.channel()).declare()

        found = []

        def read():
            bound = queue(conn.channel())
            while (message := bound.get(no_ack=True)) is not None:
                found.append(json.loads(message.body))
            return list(found)
        yield read
        queue(conn.channel()).delete()


def test_an_assessment_follows_the_rules_and_a_sensitive_one_waits_for_another_manager(tenant, events):
    case = case_at_risk_and_safety(tenant)
    victim, responsible = parties(case)["victim"], parties(case)["responsible_person"]
    coordinator = tenant.risk_client("coordinator", subject="coord-1")
    plain = coordinator.assess(case.case_id, victim, [
        {"kind": "emotional_harm", "severity": "medium", "source": "victim_support", "notes": "anxious"}])
    assert (plain.level, plain.decision, plain.status) == ("medium", "direct_allowed", "approved")
    assert plain.approved_by.startswith("rule:") and plain.current and plain.rule_version
    assert {r.conclusion for r in plain.reasons} >= {"level:medium", "decision:direct_allowed"}

    sensitive = coordinator.assess(case.case_id, responsible, [
        {"kind": "domestic_abuse", "severity": "medium", "source": "police"}])
    assert sensitive.status == "awaiting_approval" and sensitive.needs_approval and not sensitive.current
    assert any(r.conclusion == "approval:required" for r in sensitive.reasons)

    # Four eyes: someone who is both coordinator and manager cannot approve their own assessment.
    both = tenant.risk_client("coordinator", "manager", subject="coord-1")
    code, message, _ = refused(lambda: both.approve(sensitive.assessment_id))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "assessor" in message
    assert refused(lambda: coordinator.approve(sensitive.assessment_id))[0] == grpc.StatusCode.PERMISSION_DENIED
    manager = tenant.risk_client("manager", subject="mgr-1")
    code, _, _ = refused(lambda: manager.approve(sensitive.assessment_id, expected_version=sensitive.version + 5))
    assert code == grpc.StatusCode.ABORTED
    approved = manager.approve(sensitive.assessment_id, expected_version=sensitive.version)
    assert approved.status == "approved" and approved.approved_by == "mgr-1" and approved.current
    assert refused(lambda: manager.approve(sensitive.assessment_id))[0] == grpc.StatusCode.FAILED_PRECONDITION

    # A new assessment of the same person supersedes the one in force.
    again = coordinator.assess(case.case_id, victim, [])
    assert again.supersedes == plain.assessment_id
    statuses = {a.assessment_id: a.status for a in coordinator.list(case.case_id)}
    assert statuses[plain.assessment_id] == "superseded" and statuses[again.assessment_id] == "approved"

    published = wait_for(lambda: (found := events()) and len(found) >= 5 and found, timeout=20)
    types = [e["type"] for e in published]
    assert types.count("risk_assessed") == 3 and "risk_approval_requested" in types and "risk_approved" in types
    assert all(e["county"] == tenant.county for e in published)
    assert not any("anxious" in json.dumps(e) for e in published)      # notes stay in the service


def test_a_rejection_needs_a_reason_and_leaves_the_participant_uncleared(tenant):
    case = case_at_risk_and_safety(tenant)
    victim = parties(case)["victim"]
    a = tenant.risk_client("coordinator").assess(case.case_id, victim, [
        {"kind": "stalking_or_harassment", "severity": "high", "source": "police"}])
    manager = tenant.risk_client("manager", subject="mgr-1")
    code, _, details = refused(lambda: manager.reject(a.assessment_id, reason=""))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details == [("reason", "is required")]
    rejected = manager.reject(a.assessment_id, reason="needs the police view on the harassment order")
    assert rejected.status == "rejected" and rejected.rejected_by == "mgr-1" and not rejected.current
    gate = tenant.risk_client("coordinator").check_meeting_safety(case.case_id, [victim], "indirect_session")
    assert not gate.allowed and victim in gate.reasons[0]


def test_the_gate_allows_a_conference_only_with_every_measure_in_the_plan(tenant, stack):
    case = case_at_risk_and_safety(tenant)
    victim, responsible = parties(case)["victim"], parties(case)["responsible_person"]
    coordinator = tenant.risk_client("coordinator")
    people = [victim, responsible]
    assert not coordinator.check_meeting_safety(case.case_id, people, "conference", DIRECT).allowed
    coordinator.assess(case.case_id, victim, [])
    prison = coordinator.assess(case.case_id, responsible, [
        {"kind": "prison_security", "severity": "medium", "source": "prison"}])
    # The responsible person is 17: a supporter must be there too.
    needed = {"co_facilitation", "prison_venue", "supporter_present"}
    assert set(prison.measures) == needed and prison.status == "approved"

    without_prison = coordinator.check_meeting_safety(case.case_id, people, "conference",
                                                      ["co_facilitation", "supporter_present"])
    assert not without_prison.allowed and any("prison" in r for r in without_prison.reasons)
    assert coordinator.check_meeting_safety(case.case_id, people, "conference", sorted(needed)).allowed

    # Over nameko RPC, as the scheduling service will ask, with its own service token.
    rpc = RpcClient(stack.amqp_uri, timeout=10, token=stack.issuer.issue_service("scheduling"))
    try:
        allowed = ask_safety_gate(rpc, county=tenant.county, case_id=case.case_id, participant_ids=people,
                                  meeting_kind="conference", plan_measures=sorted(needed))
        assert allowed.allowed
        elsewhere = ask_safety_gate(rpc, county="another-county", case_id=case.case_id, participant_ids=people,
                                    meeting_kind="conference", plan_measures=sorted(needed))
        assert not elsewhere.allowed
        stranger = ask_safety_gate(rpc, county=tenant.county, case_id=case.case_id,
                                   participant_ids=[victim, str(uuid.uuid4())], meeting_kind="conference",
                                   plan_measures=DIRECT)
        assert not stranger.allowed and "not a participant" in " ".join(stranger.reasons)
        with pytest.raises(RpcError) as err:
            RpcClient(stack.amqp_uri, timeout=10).call(
                "risk", "check_meeting_safety", county=tenant.county, case_id=case.case_id, participant_ids=people,
                meeting_kind="conference", plan_measures=[])
        assert err.value.exc_type == "Unauthenticated"
    finally:
        rpc.close()
    metrics = f"http://127.0.0.1:{stack.ports['risk'].http}/metrics"
    assert metric_value(metrics, "mend_risk_gate_decisions_total", meeting_kind="conference", allowed="true") >= 1


def test_new_information_and_a_withdrawal_make_assessments_lapse(tenant):
    case = case_at_risk_and_safety(tenant)
    victim, responsible = parties(case)["victim"], parties(case)["responsible_person"]
    risk = tenant.risk_client("coordinator")
    risk.assess(case.case_id, victim, [])
    risk.assess(case.case_id, responsible, [])
    lapsed = risk.new_information(case.case_id, "a new non-molestation order was made yesterday",
                                  participant_id=responsible)
    assert len(lapsed) == 1
    current = risk.list(case.case_id, current_only=True)
    assert [a.participant_id for a in current] == [victim]
    clearance = risk.check_meeting_safety(case.case_id, [victim, responsible], "conference", DIRECT)
    assert not clearance.allowed and responsible in " ".join(clearance.reasons)

    # The victim withdraws consent in the cases service: the risk worker lets theirs lapse too.
    Cases(tenant).RecordConsent(case_id=case.case_id, participant_id=victim, status="withdrawn", method="verbal")
    wait_for(lambda: not risk.list(case.case_id, current_only=True))
    withdrawn = [a for a in risk.list(case.case_id) if a.participant_id == victim][0]
    assert withdrawn.status == "expired" and "consent withdrawn" in withdrawn.expiry_reason


def test_access_follows_county_role_and_allocation(tenant, stack):
    case = case_at_risk_and_safety(tenant)
    victim = parties(case)["victim"]
    assessment = tenant.risk_client("coordinator").assess(case.case_id, victim, [])
    outsider = RiskOf(stack, ["coordinator", "manager", "auditor"], ["another-county"])
    for call in (lambda: outsider.get(assessment.assessment_id),
                 lambda: outsider.assess(case.case_id, victim, []),
                 lambda: outsider.check_meeting_safety(case.case_id, [victim], "indirect_session"),
                 lambda: outsider.approve(assessment.assessment_id)):
        assert refused(call)[0] == grpc.StatusCode.NOT_FOUND
    assert outsider.list(case.case_id) == []
    auditor = tenant.risk_client("auditor", subject="aud-1")
    assert auditor.get(assessment.assessment_id).assessment_id == assessment.assessment_id
    assert refused(lambda: auditor.assess(case.case_id, victim, []))[0] == grpc.StatusCode.PERMISSION_DENIED
    unallocated = tenant.risk_client("facilitator", subject="fac-nobody")
    assert refused(lambda: unallocated.get(assessment.assessment_id))[0] == grpc.StatusCode.NOT_FOUND
    assert refused(lambda: unallocated.assess(case.case_id, victim, []))[0] == grpc.StatusCode.NOT_FOUND
    assert unallocated.list(case.case_id) == []
    admin = tenant.risk_client("admin", subject="it-admin")
    assert refused(lambda: admin.get(assessment.assessment_id))[0] == grpc.StatusCode.PERMISSION_DENIED
    rules = auditor.rules()
    assert rules.version == assessment.rule_version and "factors" in json.loads(rules.rules_json)


def RiskOf(stack, roles, counties):
    from mend_cli.client import RiskClient
    return RiskClient(stack.grpc_target("risk"), token=stack.token(roles, counties, subject="outsider"))


def test_bad_input_names_the_field_and_the_rule(tenant):
    case = case_at_risk_and_safety(tenant)
    victim = parties(case)["victim"]
    risk = tenant.risk_client("coordinator")
    code, _, details = refused(lambda: risk.assess(case.case_id, victim, [
        {"kind": "bad_vibes", "severity": "extreme", "source": "rumour"},
        {"kind": "emotional_harm", "severity": "low", "source": "police", "notes": "x\x00y"}]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert {f for f, _ in details} == {"factors[0].kind", "factors[0].severity", "factors[0].source",
                                       "factors[1].notes"}
    code, _, details = refused(lambda: risk.assess(case.case_id, str(uuid.uuid4()), []))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details == [("participant_id",
                                                                      "is not a participant of this case")]
    code, _, details = refused(lambda: risk.check_meeting_safety("not-a-case", [], "tea_party", ["indirect_only"]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert {f for f, _ in details} == {"case_id", "participant_ids", "meeting_kind", "plan_measures[0]"}
    assert refused(lambda: risk.get("../../etc/passwd"))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert risk.list(case.case_id) == []      # nothing half-written by the refusals


@pytest.fixture(scope="module")
def generated_case(stack):
    from mend_cli.pytest_stack import make_tenant
    tenant = make_tenant(stack)
    case = case_at_risk_and_safety(tenant)
    return tenant, case


text = st.text(st.characters(codec="utf-8"), max_size=60)
factor = st.fixed_dictionaries({"kind": text, "severity": text, "source": text, "notes": text})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case_id=st.one_of(st.just(None), text), participant=st.one_of(st.just(None), text),
       factors=st.lists(factor, max_size=4), kind=text, measures=st.lists(text, max_size=3))
def test_generated_requests_are_refused_or_answered_never_an_internal_error(generated_case, case_id, participant,
                                                                            factors, kind, measures):
    tenant, case = generated_case
    risk = tenant.risk_client("coordinator")
    case_id = case.case_id if case_id is None else case_id
    participant = parties(case)["victim"] if participant is None else participant
    for call in (lambda: risk.assess(case_id, participant, factors),
                 lambda: risk.check_meeting_safety(case_id, [participant], kind, measures),
                 lambda: risk.new_information(case_id, kind, participant_id=participant)):
        try:
            call()
        except grpc.RpcError as err:
            assert err.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                  grpc.StatusCode.FAILED_PRECONDITION), (err.code(), err.details())
