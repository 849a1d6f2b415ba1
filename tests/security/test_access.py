"""Who may do what, over real gRPC and HTTP: every call needs valid credentials, partner
agencies see only their own referrals, staff only their own counties (facilitators only their
allocated cases and their own meetings), only admins manage agencies and keys, and every read
leaves an audit record."""
from __future__ import annotations

import base64
import hmac
import json
import time
import uuid

import grpc
import jwt
import pytest
import requests

from mend.cases.v1 import cases_pb2, cases_pb2_grpc
from mend.notifications.v1 import notifications_pb2, notifications_pb2_grpc
from mend.risk.v1 import risk_pb2, risk_pb2_grpc
from mend.referrals.v1 import referrals_pb2, referrals_pb2_grpc
from mend.scheduling.v1 import scheduling_pb2, scheduling_pb2_grpc
from mend_cli.client import CasesClient, ReferralsClient
from mend_cli.pytest_stack import referral_draft
from mend_common.auth import TokenIssuer, generate_signing_key
from tests.support.mend import rows
from tests.support.scheduling import (Scheduling, book, cleared_case, local, next_monday, placement,
                                      register_facilitator, request_meeting, save_venue, ts)
from tests.support.waiting import wait_for

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
OK = grpc.StatusCode.OK

SERVICES = [  # (service, proto module, stub class, service name)
    ("referrals", referrals_pb2, referrals_pb2_grpc.ReferralServiceStub, "ReferralService"),
    ("referrals", referrals_pb2, referrals_pb2_grpc.AgencyAdminServiceStub, "AgencyAdminService"),
    ("cases", cases_pb2, cases_pb2_grpc.CaseServiceStub, "CaseService"),
    ("risk", risk_pb2, risk_pb2_grpc.RiskServiceStub, "RiskService"),
    ("notifications", notifications_pb2, notifications_pb2_grpc.NotificationServiceStub, "NotificationService"),
    ("scheduling", scheduling_pb2, scheduling_pb2_grpc.SchedulingServiceStub, "SchedulingService"),
]


def every_method():
    for service, module, stub_class, name in SERVICES:
        for method in module.DESCRIPTOR.services_by_name[name].methods:
            yield service, stub_class, method.name, getattr(module, method.input_type.name)


ALL_METHODS = list(every_method())
# A new method must be added here on purpose, after checking the tests below cover it.
assert len(ALL_METHODS) == 64
CASE_METHODS = [(m, r) for s, _, m, r in ALL_METHODS if s == "cases"]
RISK_METHODS = [(m, r) for s, _, m, r in ALL_METHODS if s == "risk"]
NOTIFICATION_METHODS = [(m, r) for s, _, m, r in ALL_METHODS if s == "notifications"]
SCHEDULING_METHODS = [(m, r) for s, _, m, r in ALL_METHODS if s == "scheduling"]


def code_of(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as err:
        return err.code()
    return OK


def call_method(stack, service, stub_class, method, request_class, metadata=()):
    stub = stub_class(grpc.insecure_channel(stack.grpc_target(service)))
    return code_of(lambda: getattr(stub, method)(request_class(), metadata=tuple(metadata), timeout=10))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256(claims: dict, secret: bytes) -> str:
    """The algorithm-confusion attack: an HMAC token keyed with the (public) verification key."""
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(hmac.new(secret, signing_input.encode(), 'sha256').digest())}"


def _claims(county: str, **overrides) -> dict:
    now = int(time.time())
    claims = {"iss": "mend-local", "aud": "mend", "sub": "attacker", "iat": now, "exp": now + 600,
              "roles": ["admin", "coordinator"], "counties": [county], "name": ""}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
def other_issuer(tmp_path) -> TokenIssuer:
    generate_signing_key(tmp_path / "other.pem", tmp_path / "other.pub.pem")
    return TokenIssuer.from_file(tmp_path / "other.pem")


def bad_bearer_tokens(stack, tenant, other_issuer) -> dict[str, str]:
    """Bearer tokens a service must refuse, by what is wrong with them."""
    county = tenant.county
    good = stack.token(["coordinator"], [county], subject="victim-of-tampering")
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(roles=["admin"], counties=[county, "every-county"])
    tampered = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    public_pem = stack.public_key.read_bytes()
    key = stack.issuer.key
    return {
        "garbage": "not-a-token",
        "three garbage parts": "abc.def.ghi",
        "tampered claims": tampered,
        "signature stripped": f"{header}.{payload}.",
        "expired": stack.issuer.issue("staff-1", ["coordinator"], [county], ttl_seconds=-10),
        "signed by another key": other_issuer.issue("staff-1", ["admin", "coordinator"], [county]),
        "alg none": jwt.encode(_claims(county), None, algorithm="none"),
        "HS256 keyed with the public key": _hs256(_claims(county), public_pem),
        "wrong audience": jwt.encode(_claims(county, aud="somebody-else"), key, algorithm="EdDSA"),
        "wrong issuer": jwt.encode(_claims(county, iss="evil-issuer"), key, algorithm="EdDSA"),
        "no expiry": jwt.encode(_claims(county, exp=None), key, algorithm="EdDSA"),
        "not yet valid": jwt.encode(_claims(county, nbf=int(time.time()) + 600), key, algorithm="EdDSA"),
        "partner role": jwt.encode(_claims(county, roles=["partner"]), key, algorithm="EdDSA"),
        "unknown role": jwt.encode(_claims(county, roles=["superuser"]), key, algorithm="EdDSA"),
        "no roles": jwt.encode(_claims(county, roles=[]), key, algorithm="EdDSA"),
        "no counties": jwt.encode(_claims(county, counties=[]), key, algorithm="EdDSA"),
        "counties not a list": jwt.encode(_claims(county, counties=county), key, algorithm="EdDSA"),
    }


def bad_api_keys(tenant) -> dict[str, str]:
    key_id = tenant.api_key.split("_")[1]
    secret = tenant.api_key.split("_", 2)[2]
    return {
        "garbage": "garbage",
        "empty parts": "mend__",
        "no secret": f"mend_{key_id}_",
        "wrong prefix": f"nope_{key_id}_{secret}",
        "unknown key id": f"mend_{uuid.uuid4().hex[:16]}_{secret}",
        "wrong secret": f"mend_{key_id}_{secret[:-2]}{'AA' if not secret.endswith('AA') else 'BB'}",
        "secret of another key": f"mend_{tenant.other_api_key.split('_')[1]}_{secret}",
        "sql in key id": f"mend_' OR '1'='1_{secret}",
        # Long, but within gRPC's 8 KiB metadata limit (beyond it grpc itself answers RESOURCE_EXHAUSTED).
        "very long": "mend_" + "a" * 2000 + "_" + "b" * 3000,
    }


# -- no or bad credentials ----------------------------------------------------------------
@pytest.mark.parametrize("service,stub_class,method,request_class", ALL_METHODS,
                         ids=[f"{s}.{m}" for s, _, m, _ in ALL_METHODS])
def test_every_method_without_credentials_is_unauthenticated(stack, service, stub_class, method, request_class):
    assert call_method(stack, service, stub_class, method, request_class) == UNAUTHENTICATED


@pytest.mark.parametrize("scheme", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc", "bearer"])
def test_a_malformed_authorization_header_is_unauthenticated(stack, scheme):
    for service, stub_class, method, request_class in ALL_METHODS:
        assert call_method(stack, service, stub_class, method, request_class,
                           [("authorization", scheme)]) == UNAUTHENTICATED, (method, scheme)


def test_http_without_or_with_bad_credentials_is_401(stack, tenant, other_issuer):
    base = stack.http_base("referrals")
    submitted = tenant.agency_client().submit(referral_draft(tenant.county))
    calls = [("POST", f"{base}/v1/referrals", referral_draft(tenant.county)),
             ("GET", f"{base}/v1/referrals/{submitted.referral_id}", None),
             ("GET", f"{base}/v1/referrals/{uuid.uuid4()}", None)]
    credentials = [{}] + [{"x-api-key": k} for k in bad_api_keys(tenant).values()] + [
        {"Authorization": f"Bearer {t}"} for t in bad_bearer_tokens(stack, tenant, other_issuer).values()] + [
        {"Authorization": "Basic dXNlcjpwYXNz"}]
    for method, url, body in calls:
        for headers in credentials:
            headers = dict(headers, **({"Idempotency-Key": f"k-{uuid.uuid4().hex}"} if body else {}))
            response = requests.request(method, url, json=body, headers=headers, timeout=10)
            assert response.status_code == 401, (method, url, headers, response.text)
            assert "Traceback" not in response.text and submitted.referral_id not in response.text
            assert response.json()["error"] == "unauthenticated"


def test_bad_api_keys_are_unauthenticated(stack, tenant):
    for what, key in bad_api_keys(tenant).items():
        client = ReferralsClient(stack.grpc_target("referrals"), api_key=key)
        assert code_of(lambda: client.list()) == UNAUTHENTICATED, what
        assert code_of(lambda: client.submit(referral_draft(tenant.county))) == UNAUTHENTICATED, what
    # The real key still works: nothing above was a lucky match.
    assert code_of(lambda: tenant.agency_client().list()) == OK


def test_bad_bearer_tokens_are_unauthenticated(stack, tenant, other_issuer):
    for what, token in bad_bearer_tokens(stack, tenant, other_issuer).items():
        cases = CasesClient(stack.grpc_target("cases"), token=token)
        referrals = ReferralsClient(stack.grpc_target("referrals"), token=token)
        scheduling = scheduling_pb2_grpc.SchedulingServiceStub(grpc.insecure_channel(stack.grpc_target("scheduling")))
        md = (("authorization", f"Bearer {token}"),)
        assert code_of(lambda: cases.list()) == UNAUTHENTICATED, what
        assert code_of(lambda: scheduling.ListFacilitators(scheduling_pb2.ListFacilitatorsRequest(
            county=tenant.county), metadata=md, timeout=10)) == UNAUTHENTICATED, what
        assert code_of(lambda: scheduling.GetMeeting(scheduling_pb2.GetMeetingRequest(
            meeting_id=str(uuid.uuid4())), metadata=md, timeout=10)) == UNAUTHENTICATED, what
        assert code_of(lambda: cases.get(str(uuid.uuid4()))) == UNAUTHENTICATED, what
        assert code_of(lambda: referrals.list()) == UNAUTHENTICATED, what
        assert code_of(lambda: referrals.list_agencies()) == UNAUTHENTICATED, what
        assert code_of(lambda: referrals.create_agency("Rogue Agency", tenant.county, "police")) == UNAUTHENTICATED, what
    # The same kind of token, properly issued, works.
    assert code_of(lambda: tenant.cases_client("coordinator").list()) == OK
    assert code_of(lambda: Scheduling(tenant).ListFacilitators(scheduling_pb2.ListFacilitatorsRequest())) == OK


def test_a_revoked_key_stops_working(stack, tenant):
    admin = ReferralsClient(stack.grpc_target("referrals"), token=tenant.staff_token("admin", subject="it-admin"))
    issued = admin.issue_key(tenant.agency_id, label="to be revoked")
    agency = ReferralsClient(stack.grpc_target("referrals"), api_key=issued.api_key)
    submitted = agency.submit(referral_draft(tenant.county))
    assert code_of(lambda: agency.get(submitted.referral_id)) == OK

    assert admin.revoke_key(issued.key_id) is True
    assert code_of(lambda: agency.get(submitted.referral_id)) == UNAUTHENTICATED
    assert code_of(lambda: agency.submit(referral_draft(tenant.county))) == UNAUTHENTICATED
    response = requests.get(f"{stack.http_base('referrals')}/v1/referrals/{submitted.referral_id}",
                            headers={"x-api-key": issued.api_key}, timeout=10)
    assert response.status_code == 401
    # Revoking again changes nothing; the agency's other key is unaffected.
    assert admin.revoke_key(issued.key_id) is False
    assert code_of(lambda: tenant.agency_client().get(submitted.referral_id)) == OK


def test_a_partner_api_key_is_refused_by_the_cases_service(stack, tenant):
    cases = CasesClient(stack.grpc_target("cases"), api_key=tenant.api_key)
    assert code_of(lambda: cases.list()) == UNAUTHENTICATED
    assert code_of(lambda: cases.get(str(uuid.uuid4()))) == UNAUTHENTICATED
    # Even alongside a valid staff token, an API key is not something the cases service takes.
    both = CasesClient(stack.grpc_target("cases"), api_key=tenant.api_key, token=tenant.staff_token("coordinator"))
    assert code_of(lambda: both.list()) == UNAUTHENTICATED


def test_a_partner_credential_is_refused_by_every_scheduling_method(stack, tenant):
    """Partner agencies have no part in scheduling: their API key (alone, or beside a staff
    token) is not something the service takes, and a token carrying the partner role is refused."""
    partner_token = stack.token(["partner"], [tenant.county], subject=f"agency:{tenant.agency_id}")
    credentials = {"api key": [("x-api-key", tenant.api_key)],
                   "api key and staff token": [("x-api-key", tenant.api_key),
                                               ("authorization", f"Bearer {tenant.staff_token('coordinator')}")],
                   "partner role token": [("authorization", f"Bearer {partner_token}")]}
    stub = scheduling_pb2_grpc.SchedulingServiceStub(grpc.insecure_channel(stack.grpc_target("scheduling")))
    for what, metadata in credentials.items():
        for method, request_class in SCHEDULING_METHODS:
            code = code_of(lambda: getattr(stub, method)(request_class(), metadata=tuple(metadata), timeout=10))
            assert code == UNAUTHENTICATED, (what, method, code)


# -- partner agencies ------------------------------------------------------------------------
def test_an_agency_cannot_see_another_agencys_referral(stack, tenant):
    mine = tenant.agency_client().submit(referral_draft(tenant.county))
    other = tenant.agency_client(other=True)
    with pytest.raises(grpc.RpcError) as foreign:
        other.get(mine.referral_id)
    assert foreign.value.code() == NOT_FOUND
    with pytest.raises(grpc.RpcError) as missing:
        other.get(str(uuid.uuid4()))
    # Indistinguishable from a referral that does not exist.
    assert foreign.value.details().replace(mine.referral_id, "ID") == missing.value.details().replace(
        missing.value.details().split()[1], "ID")
    assert mine.referral_id not in [r.referral_id for r in other.list(page_size=200).referrals]
    assert mine.referral_id in [r.referral_id for r in tenant.agency_client().list(page_size=200).referrals]
    response = requests.get(f"{stack.http_base('referrals')}/v1/referrals/{mine.referral_id}",
                            headers={"x-api-key": tenant.other_api_key}, timeout=10)
    assert response.status_code == 404


def test_an_agency_cannot_submit_for_another_county_nor_act_as_staff(stack, tenant):
    agency = tenant.agency_client()
    assert code_of(lambda: agency.submit(referral_draft(f"county-{uuid.uuid4().hex[:8]}"))) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: agency.list_agencies()) == PERMISSION_DENIED
    assert code_of(lambda: agency.create_agency("Sneaky Agency", tenant.county, "police")) == PERMISSION_DENIED
    assert code_of(lambda: agency.issue_key(tenant.other_agency_id)) in (PERMISSION_DENIED, NOT_FOUND)
    assert code_of(lambda: agency.issue_key(tenant.agency_id)) in (PERMISSION_DENIED, NOT_FOUND)
    assert code_of(lambda: agency.revoke_key(tenant.other_api_key.split("_")[1])) in (PERMISSION_DENIED, NOT_FOUND)
    assert code_of(lambda: tenant.agency_client(other=True).list()) == OK  # untouched
    # Staff cannot submit referrals in an agency's name.
    staff = ReferralsClient(stack.grpc_target("referrals"), token=tenant.staff_token("admin", "coordinator"))
    assert code_of(lambda: staff.submit(referral_draft(tenant.county))) == PERMISSION_DENIED


# -- staff -------------------------------------------------------------------------------------
def _opened_case(tenant) -> tuple[str, str]:
    agency = tenant.agency_client()
    submitted = agency.submit(referral_draft(tenant.county))
    case_id = wait_for(lambda: agency.get(submitted.referral_id).case_id, timeout=20)
    return submitted.referral_id, case_id


def test_staff_of_another_county_see_nothing(stack, tenant):
    referral_id, case_id = _opened_case(tenant)
    elsewhere = f"county-{uuid.uuid4().hex[:8]}"
    outsider_token = stack.token(["coordinator", "manager", "auditor"], [elsewhere], subject="outsider")
    cases = CasesClient(stack.grpc_target("cases"), token=outsider_token)
    assert code_of(lambda: cases.get(case_id)) == NOT_FOUND
    assert list(cases.list().cases) == []
    assert list(cases.list(county=elsewhere).cases) == []
    assert code_of(lambda: cases.list(county=tenant.county)) == NOT_FOUND
    referrals = ReferralsClient(stack.grpc_target("referrals"), token=outsider_token)
    assert code_of(lambda: referrals.get(referral_id)) == NOT_FOUND
    assert referral_id not in [r.referral_id for r in referrals.list(page_size=200).referrals]
    # A coordinator of the county does see them.
    assert tenant.cases_client("coordinator").get(case_id).referral_id == referral_id
    inside = ReferralsClient(stack.grpc_target("referrals"), token=tenant.staff_token("coordinator"))
    assert inside.get(referral_id).case_id == case_id


@pytest.mark.parametrize("roles,subject", [
    (["coordinator", "manager", "auditor"], "outsider"),   # another county
    (["facilitator"], "not-allocated"),                    # this county, not allocated
    (["admin"], "it-admin"),                               # this county, IT
])
def test_no_case_method_reveals_or_changes_a_case_the_caller_may_not_see(stack, tenant, roles, subject):
    """Every CaseService method, each field of the case filled in plausibly, for a caller who may
    not see the case: never OK, never a hint that it exists, and the case unchanged."""
    _, case_id = _opened_case(tenant)
    counties = [f"county-{uuid.uuid4().hex[:8]}"] if subject == "outsider" else [tenant.county]
    token = stack.token(roles, counties, subject=subject)
    stub = cases_pb2_grpc.CaseServiceStub(grpc.insecure_channel(stack.grpc_target("cases")))
    before = tenant.cases_client("coordinator").get(case_id)
    plausible = {"case_id": case_id, "participant_id": before.participants[0].participant_id,
                 "status": "given", "method": "verbal", "body": "a note", "reason": "because", "kind": "apology",
                 "accepted": True, "facts_acknowledged": True, "to_stage": cases_pb2.STAGE_ELIGIBILITY,
                 "role": "supporter", "given_name": "Sam", "facilitator_ids": [subject], "description": "x",
                 "owner_participant_id": before.participants[0].participant_id, "due_on": "2030-01-01",
                 "satisfaction": "satisfied", "hold": True}
    for method, request_class in CASE_METHODS:
        fields = {k: v for k, v in plausible.items() if k in request_class.DESCRIPTOR.fields_by_name}
        if method == "ChooseIntervention":
            fields["kind"] = "direct_conference"
        if method == "UpdateOutcomeItem":
            fields.update(item_id=str(uuid.uuid4()), status="completed")
        if method == "CloseCase":
            fields["reason"] = "withdrawn"
        code = code_of(lambda: getattr(stub, method)(request_class(**fields),
                                                     metadata=(("authorization", f"Bearer {token}"),), timeout=10))
        if method == "ListCases":
            assert code in (OK, PERMISSION_DENIED)   # lists only what the caller may see: checked elsewhere
            continue
        assert code in (NOT_FOUND, PERMISSION_DENIED), f"{method} gave {code} to {roles}"
    after = tenant.cases_client("coordinator").get(case_id)
    assert (after.stage, len(after.participants), len(after.history)) == \
        (before.stage, len(before.participants), len(before.history))


@pytest.mark.parametrize("roles,subject", [
    (["coordinator", "manager", "auditor"], "outsider"),   # another county
    (["facilitator"], "not-allocated"),                    # this county, not allocated
    (["admin"], "it-admin"),                               # this county, IT
])
def test_no_risk_method_reveals_or_changes_an_assessment_the_caller_may_not_see(stack, tenant, roles, subject):
    """Every RiskService method but GetRules, filled in plausibly, for a caller who may not see
    the case: never OK (an empty list at most), and the assessments unchanged."""
    _, case_id = _opened_case(tenant)
    case = tenant.cases_client("coordinator").get(case_id)
    victim = next(p.participant_id for p in case.participants if p.role == "victim")
    assessment = tenant.risk_client("coordinator").assess(case_id, victim, [
        {"kind": "domestic_abuse", "severity": "medium", "source": "police"}])
    counties = [f"county-{uuid.uuid4().hex[:8]}"] if subject == "outsider" else [tenant.county]
    token = stack.token(roles, counties, subject=subject)
    stub = risk_pb2_grpc.RiskServiceStub(grpc.insecure_channel(stack.grpc_target("risk")))
    plausible = {"case_id": case_id, "participant_id": victim, "assessment_id": assessment.assessment_id,
                 "participant_ids": [victim], "meeting_kind": "indirect_session", "reason": "because",
                 "summary": "new information", "factors": [risk_pb2.Factor(kind="emotional_harm", severity="low",
                                                                            source="police")]}
    for method, request_class in RISK_METHODS:
        if method == "GetRules":
            continue    # the rules are no secret of any county (staff may read them; checked elsewhere)
        fields = {k: v for k, v in plausible.items() if k in request_class.DESCRIPTOR.fields_by_name}
        md = (("authorization", f"Bearer {token}"),)
        if method == "ListAssessments":
            assert list(stub.ListAssessments(request_class(**fields), metadata=md, timeout=10).assessments) == [] \
                if "admin" not in roles else code_of(lambda: stub.ListAssessments(
                    request_class(**fields), metadata=md, timeout=10)) == PERMISSION_DENIED
            continue
        code = code_of(lambda: getattr(stub, method)(request_class(**fields), metadata=md, timeout=10))
        assert code in (NOT_FOUND, PERMISSION_DENIED), f"{method} gave {code} to {roles}"
    after = [(a.assessment_id, a.status, a.version) for a in tenant.risk_client("coordinator").list(case_id)]
    assert after == [(assessment.assessment_id, "awaiting_approval", assessment.version)]


@pytest.mark.parametrize("roles,subject", [
    (["coordinator", "manager", "auditor"], "outsider"),   # another county
    (["facilitator"], "a-facilitator"),                    # this county, no part in messages
    (["admin"], "it-admin"),                               # this county, IT: contacts only
])
def test_no_notification_method_reveals_or_changes_a_case_the_caller_may_not_see(stack, tenant, roles, subject):
    """Every NotificationService method about a case or a message, filled in plausibly, for a
    caller who may not see the case: never OK (an empty list at most)."""
    _, case_id = _opened_case(tenant)
    case = tenant.cases_client("coordinator").get(case_id)
    victim = next(p.participant_id for p in case.participants if p.role == "victim")
    responsible = next(p.participant_id for p in case.participants if p.role == "responsible_person")
    counties = [f"county-{uuid.uuid4().hex[:8]}"] if subject == "outsider" else [tenant.county]
    md = (("authorization", f"Bearer {stack.token(roles, counties, subject=subject)}"),)
    stub = notifications_pb2_grpc.NotificationServiceStub(grpc.insecure_channel(stack.grpc_target("notifications")))
    plausible = {"case_id": case_id, "participant_id": victim, "about_participant_id": victim,
                 "to_participant_id": responsible, "fields": ["given_name"], "reason": "agreed", "channels": ["email"],
                 "language": "en", "message_id": str(uuid.uuid4())}
    for method, request_class in NOTIFICATION_METHODS:
        if method in ("SaveTemplate", "ListTemplates", "PreviewTemplate", "SetStaffContact",
                      "RegisterReferrerContact"):
            continue    # not about a case: their roles are checked in tests/integration/test_notifications.py
        fields = {k: v for k, v in plausible.items() if k in request_class.DESCRIPTOR.fields_by_name}
        call = lambda: getattr(stub, method)(request_class(**fields), metadata=md, timeout=10)  # noqa: E731
        if method == "ListMessages" and "admin" not in roles and "facilitator" not in roles:
            assert list(call().messages) == []
            continue
        assert code_of(call) in (NOT_FOUND, PERMISSION_DENIED), f"{method} gave {code_of(call)} to {roles}"


def _scheduling_records(tenant) -> dict:
    """A county's scheduling records: two facilitators, a venue, a case cleared by the risk
    service with a booked meeting and an open request, and a proposal for the open request."""
    first, second = register_facilitator(tenant, "Pat First"), register_facilitator(tenant, "Rae Second")
    venue = save_venue(tenant)
    case_id, people = cleared_case(tenant)
    booked_request = request_meeting(tenant, case_id, [people["victim"]], kind="indirect_session")
    meeting = book(tenant, booked_request.request_id, local(1, "10:00"), [first], venue)
    still_open = request_meeting(tenant, case_id, [people["victim"]], kind="indirect_session")
    proposal = Scheduling(tenant).ProposeAllocation(scheduling_pb2.ProposeAllocationRequest(
        county=tenant.county, request_ids=[still_open.request_id], horizon_start=next_monday().isoformat(), weeks=1,
        time_limit_seconds=1))
    return {"facilitator": first, "other_facilitator": second, "venue": venue, "case_id": case_id,
            "victim": people["victim"], "meeting": meeting, "open_request": still_open.request_id,
            "proposal_id": proposal.proposal_id}


def _plausible_scheduling_requests(tenant, r: dict) -> dict:
    """Every SchedulingService method, each about the county's records and otherwise well formed."""
    s = scheduling_pb2
    f, venue, m = r["facilitator"], r["venue"], r["meeting"]
    renamed = s.Facilitator()
    renamed.CopyFrom(f)
    renamed.name = "Renamed by someone else"
    moved_venue = s.Venue()
    moved_venue.CopyFrom(venue)
    moved_venue.address = "Somewhere else entirely"
    elsewhere = placement(local(3, "10:00"), [f], venue)
    requests_ = {
        "SaveFacilitator": renamed,
        "GetFacilitator": s.GetFacilitatorRequest(facilitator_id=f.facilitator_id),
        "ListFacilitators": s.ListFacilitatorsRequest(county=tenant.county, include_inactive=True),
        "SaveVenue": moved_venue,
        "GetVenue": s.GetVenueRequest(venue_id=venue.venue_id),
        "ListVenues": s.ListVenuesRequest(county=tenant.county),
        "RequestMeeting": s.MeetingRequest(county=tenant.county, case_id=r["case_id"], kind="indirect_session",
                                           participant_ids=[r["victim"]], earliest=ts(local(0, "08:00")),
                                           latest=ts(local(4, "20:00"))),
        "ListMeetingRequests": s.ListMeetingRequestsRequest(county=tenant.county),
        "WithdrawMeetingRequest": s.WithdrawMeetingRequestRequest(request_id=r["open_request"], reason="not needed"),
        "ProposeAllocation": s.ProposeAllocationRequest(county=tenant.county, request_ids=[r["open_request"]],
                                                        horizon_start=next_monday().isoformat(), weeks=1,
                                                        time_limit_seconds=1),
        "GetAllocationProposal": s.GetAllocationProposalRequest(proposal_id=r["proposal_id"]),
        "AcceptAllocationProposal": s.AcceptAllocationProposalRequest(proposal_id=r["proposal_id"]),
        "ScheduleMeeting": s.ScheduleMeetingRequest(request_id=r["open_request"], placement=elsewhere),
        "RescheduleMeeting": s.RescheduleMeetingRequest(meeting_id=m.meeting_id, placement=elsewhere,
                                                        reason="room double booked", expected_version=m.version),
        "ReplanMeeting": s.ReplanMeetingRequest(meeting_id=m.meeting_id, reason="room flooded"),
        "CancelMeeting": s.CancelMeetingRequest(meeting_id=m.meeting_id, reason="not needed",
                                                expected_version=m.version),
        "GetMeeting": s.GetMeetingRequest(meeting_id=m.meeting_id),
        "ListMeetings": s.ListMeetingsRequest(county=tenant.county, case_id=r["case_id"],
                                              facilitator_id=f.facilitator_id, include_cancelled=True),
        "FacilitatorCalendar": s.FacilitatorCalendarRequest(facilitator_id=f.facilitator_id),
        "MeetingCalendar": s.GetMeetingRequest(meeting_id=m.meeting_id),
    }
    # A new method must get a plausible request here.
    assert set(requests_) == {method for method, _ in SCHEDULING_METHODS}
    return requests_


def _scheduling_state(tenant, r: dict) -> tuple:
    coordinator = Scheduling(tenant)
    s = scheduling_pb2
    m = coordinator.GetMeeting(s.GetMeetingRequest(meeting_id=r["meeting"].meeting_id))
    requests_ = {q.request_id: q.status for q in coordinator.ListMeetingRequests(
        s.ListMeetingRequestsRequest(county=tenant.county)).requests}
    meetings = coordinator.ListMeetings(s.ListMeetingsRequest(county=tenant.county, include_cancelled=True)).meetings
    facilitator = coordinator.GetFacilitator(s.GetFacilitatorRequest(facilitator_id=r["facilitator"].facilitator_id))
    return (m.status, m.version, m.starts_at.seconds, requests_, len(meetings), facilitator.version,
            coordinator.GetVenue(s.GetVenueRequest(venue_id=r["venue"].venue_id)).version,
            coordinator.GetAllocationProposal(s.GetAllocationProposalRequest(proposal_id=r["proposal_id"])).status)


@pytest.mark.parametrize("roles,subject", [
    (["coordinator", "manager", "auditor"], "outsider"),   # another county
    (["facilitator"], "idle-facilitator"),                 # this county, not in the meeting
    (["admin"], "it-admin"),                               # this county, IT
])
def test_no_scheduling_method_reveals_or_changes_a_record_the_caller_may_not_see(stack, tenant, roles, subject):
    """Every SchedulingService method, filled in plausibly about the county's facilitator, venue,
    request, proposal and meeting, for a caller who may not see them: another county's staff get
    NOT_FOUND for every one (as if none existed); a facilitator of the county sees its venues
    but nobody else's record, meeting or calendar; IT staff see nothing. Nothing changes."""
    records = _scheduling_records(tenant)
    if subject == "idle-facilitator":
        subject = register_facilitator(tenant, "Sid Idle").facilitator_id     # a real facilitator of the county
    counties = [f"county-{uuid.uuid4().hex[:8]}"] if subject == "outsider" else [tenant.county]
    md = (("authorization", f"Bearer {stack.token(roles, counties, subject=subject)}"),)
    stub = scheduling_pb2_grpc.SchedulingServiceStub(grpc.insecure_channel(stack.grpc_target("scheduling")))
    before = _scheduling_state(tenant, records)
    plausible = _plausible_scheduling_requests(tenant, records)
    for method, request in plausible.items():
        code = code_of(lambda: getattr(stub, method)(request, metadata=md, timeout=30))
        if subject == "outsider":
            assert code == NOT_FOUND, f"{method} gave {code} to another county's staff"
        elif "facilitator" in roles and method in ("GetVenue", "ListVenues"):
            assert code == OK, method       # the county's venues are where its facilitators work
        else:
            assert code in (NOT_FOUND, PERMISSION_DENIED), f"{method} gave {code} to {roles}"
    if subject == "outsider":
        # Naming no county means the caller's own: this county's records are still not found,
        # and the caller's lists hold none of them.
        for method in ("SaveFacilitator", "SaveVenue", "RequestMeeting"):
            request = type(plausible[method])()
            request.CopyFrom(plausible[method])
            request.county = ""
            assert code_of(lambda: getattr(stub, method)(request, metadata=md, timeout=10)) == NOT_FOUND, method
        for method, field in (("ListFacilitators", "facilitators"), ("ListVenues", "venues"),
                              ("ListMeetingRequests", "requests"), ("ListMeetings", "meetings")):
            request = type(plausible[method])()
            request.CopyFrom(plausible[method])
            request.county = ""
            assert list(getattr(getattr(stub, method)(request, metadata=md, timeout=10), field)) == [], method
    if "facilitator" in roles:
        assert list(stub.ListMeetings(scheduling_pb2.ListMeetingsRequest(county=tenant.county), metadata=md,
                                      timeout=10).meetings) == []
    assert _scheduling_state(tenant, records) == before


def test_a_facilitator_sees_only_allocated_cases(stack, tenant):
    referral_id, case_id = _opened_case(tenant)
    facilitator = tenant.cases_client("facilitator", subject=f"facilitator-{uuid.uuid4().hex[:6]}")
    assert code_of(lambda: facilitator.get(case_id)) == NOT_FOUND
    assert list(facilitator.list().cases) == []
    assert list(facilitator.list(county=tenant.county).cases) == []
    # Nor the referral behind it.
    referrals = ReferralsClient(stack.grpc_target("referrals"), token=tenant.staff_token("facilitator"))
    assert code_of(lambda: referrals.get(referral_id)) == NOT_FOUND


def test_only_admins_manage_agencies_and_keys_and_only_in_their_counties(stack, tenant):
    target = stack.grpc_target("referrals")
    elsewhere = f"county-{uuid.uuid4().hex[:8]}"
    for role in ("coordinator", "manager", "auditor", "facilitator"):
        staff = ReferralsClient(target, token=tenant.staff_token(role, subject=f"{role}-1"))
        assert code_of(lambda: staff.create_agency(f"Agency by {role}", tenant.county, "police")) == \
            PERMISSION_DENIED, role
        assert code_of(lambda: staff.issue_key(tenant.agency_id)) in (PERMISSION_DENIED, NOT_FOUND), role
        assert code_of(lambda: staff.revoke_key(tenant.api_key.split("_")[1])) in (PERMISSION_DENIED, NOT_FOUND), role

    other_admin = ReferralsClient(target, token=stack.token(["admin"], [elsewhere], subject="other-admin"))
    denied = (PERMISSION_DENIED, NOT_FOUND)
    assert code_of(lambda: other_admin.create_agency("Cross-border Agency", tenant.county, "police")) in denied
    assert code_of(lambda: other_admin.issue_key(tenant.agency_id)) in denied
    assert code_of(lambda: other_admin.revoke_key(tenant.api_key.split("_")[1])) in denied
    assert [a.agency_id for a in other_admin.list_agencies(county=tenant.county).agencies] == []
    assert tenant.agency_id not in [a.agency_id for a in other_admin.list_agencies().agencies]
    # None of that took effect: the key still works, no agency appeared.
    assert code_of(lambda: tenant.agency_client().list()) == OK
    admin = ReferralsClient(target, token=tenant.staff_token("admin", subject="it-admin"))
    names = {a.name for a in admin.list_agencies(county=tenant.county).agencies}
    assert names == {"Test Constabulary", "Test Probation"}
    # The county's own admin may.
    created = admin.create_agency("Youth Offending Team", tenant.county, "youth_offending_team")
    assert created.county == tenant.county
    assert admin.issue_key(created.agency_id).api_key.startswith("mend_")


# -- audit -------------------------------------------------------------------------------------
def _audit(stack, service: str, principal: str) -> list[tuple[str, str | None]]:
    found = rows(stack, service, "SELECT action, resource_id FROM audit_log WHERE principal = :p ORDER BY id",
                 p=principal)
    return [(r.action, r.resource_id) for r in found]


def test_every_read_of_a_referral_or_case_is_audited(stack, tenant):
    referral_id, case_id = _opened_case(tenant)
    agency_principal = f"agency:{tenant.agency_id}"
    before = _audit(stack, "referrals", agency_principal)

    agency = tenant.agency_client()
    agency.get(referral_id)
    requests.get(f"{stack.http_base('referrals')}/v1/referrals/{referral_id}",
                 headers={"x-api-key": tenant.api_key}, timeout=10).raise_for_status()
    agency.list()
    after = _audit(stack, "referrals", agency_principal)[len(before):]
    assert after == [("referral.read", referral_id), ("referral.read", referral_id), ("referral.list", None)]

    subject = f"auditee-{uuid.uuid4().hex[:8]}"
    staff = ReferralsClient(stack.grpc_target("referrals"), token=tenant.staff_token("coordinator", subject=subject))
    staff.get(referral_id)
    staff.list()
    assert _audit(stack, "referrals", f"staff:{subject}") == [("referral.read", referral_id), ("referral.list", None)]

    cases = tenant.cases_client("coordinator", subject=subject)
    cases.get(case_id)
    cases.list(county=tenant.county)
    cases.list()
    assert _audit(stack, "cases", f"staff:{subject}") == [("case.read", case_id), ("case.list", None),
                                                          ("case.list", None)]

    victim = next(p.participant_id for p in cases.get(case_id).participants if p.role == "victim")
    risk = tenant.risk_client("coordinator", subject=subject)
    assessment = risk.assess(case_id, victim, [])
    risk.get(assessment.assessment_id)
    risk.list(case_id)
    assert _audit(stack, "risk", f"staff:{subject}") == [("risk.assess", assessment.assessment_id),
                                                         ("risk.read", assessment.assessment_id),
                                                         ("risk.list", case_id)]


def test_every_scheduling_read_is_audited_and_a_refused_one_reveals_nothing(stack, tenant):
    records = _scheduling_records(tenant)
    f, venue, m = records["facilitator"].facilitator_id, records["venue"].venue_id, records["meeting"].meeting_id
    s = scheduling_pb2
    subject = f"auditee-{uuid.uuid4().hex[:8]}"
    staff = Scheduling(tenant, "coordinator", subject=subject)
    staff.GetFacilitator(s.GetFacilitatorRequest(facilitator_id=f))
    staff.GetVenue(s.GetVenueRequest(venue_id=venue))
    staff.GetMeeting(s.GetMeetingRequest(meeting_id=m))
    staff.ListMeetings(s.ListMeetingsRequest(county=tenant.county))
    feed = staff.FacilitatorCalendar(s.FacilitatorCalendarRequest(facilitator_id=f))
    assert _audit(stack, "scheduling", f"staff:{subject}") == [
        ("facilitator.read", f), ("venue.read", venue), ("meeting.read", m), ("meeting.list", None),
        ("facilitator.read", f), ("calendar.read", f)]
    # A calendar app reading the feed by its secret URL is audited too.
    requests.get(stack.http_base("scheduling") + feed.subscription_path, timeout=10).raise_for_status()
    assert _audit(stack, "scheduling", f"calendar-feed:{f}") == [("calendar.subscription_read", f)]

    outsider = f"outsider-{uuid.uuid4().hex[:8]}"
    md = (("authorization", f"Bearer {stack.token(['coordinator'], ['elsewhere'], subject=outsider)}"),)
    stub = scheduling_pb2_grpc.SchedulingServiceStub(grpc.insecure_channel(stack.grpc_target("scheduling")))
    with pytest.raises(grpc.RpcError) as refused:
        stub.GetMeeting(s.GetMeetingRequest(meeting_id=m), metadata=md, timeout=10)
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetMeeting(s.GetMeetingRequest(meeting_id=str(uuid.uuid4())), metadata=md, timeout=10)
    assert refused.value.code() == missing.value.code() == NOT_FOUND
    # Indistinguishable from a meeting that does not exist.
    assert refused.value.details().replace(m, "ID") == missing.value.details().replace(
        missing.value.details().split()[1], "ID")
    assert _audit(stack, "scheduling", f"staff:{outsider}")[0] == ("meeting.read_refused", m)
    county = rows(stack, "scheduling", "SELECT county FROM audit_log WHERE principal = :p ORDER BY id LIMIT 1",
                  p=f"staff:{outsider}")
    assert county[0][0] is None


def test_a_refused_read_is_audited_without_revealing_the_record(stack, tenant):
    referral_id, case_id = _opened_case(tenant)
    prober = f"agency:{tenant.other_agency_id}"
    with pytest.raises(grpc.RpcError) as refused:
        tenant.agency_client(other=True).get(referral_id)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert _audit(stack, "referrals", prober)[-1] == ("referral.read_refused", referral_id)
    county = rows(stack, "referrals", "SELECT county FROM audit_log WHERE principal = :p ORDER BY id DESC LIMIT 1",
                  p=prober)
    assert county[0][0] is None
