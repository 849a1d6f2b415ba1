"""Bad input over gRPC, against the live referrals api: INVALID_ARGUMENT carrying a
google.rpc.BadRequest that names every invalid field with the rule it breaks; an unknown enum
number is named like any other bad value; an oversized message is refused by gRPC itself; and
generated requests never produce an internal error. Nothing invalid is stored."""
from __future__ import annotations

import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mend.referrals.v1 import referrals_pb2
from mend_cli.pytest_stack import referral_draft
from mend_common.proto_convert import plain_to_message

GENERATED = settings(max_examples=60, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _request(draft: dict, request_id: str | None = None) -> referrals_pb2.SubmitReferralRequest:
    request = referrals_pb2.SubmitReferralRequest(request_id=request_id or f"req-{uuid.uuid4().hex}")
    plain_to_message(draft, request.referral)
    return request


def _violations(error: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)
    assert status is not None, "INVALID_ARGUMENT must carry a google.rpc.Status with details"
    found = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def _refused(client, request) -> tuple[grpc.RpcError, dict[str, str]]:
    """Submit a request that must be refused as INVALID_ARGUMENT: its error and field violations."""
    with pytest.raises(grpc.RpcError) as info:
        client.stub.SubmitReferral(request, metadata=client.md, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    return info.value, _violations(info.value)


def _stored(client) -> int:
    return len(client.list(page_size=200).referrals)


def test_every_invalid_field_is_named_with_its_rule_and_nothing_is_stored(tenant):
    client = tenant.agency_client()
    before = _stored(client)
    draft = referral_draft(tenant.county)
    draft["offence"]["date"] = "2026-02-30"
    draft["offence"]["type"] = ""
    draft["participants"][0]["contact"] = {"email": "not-an-email", "preferred_channel": "email"}
    draft["participants"][0]["age"] = 500
    error, violations = _refused(client, _request(draft, "x"))
    assert violations == {
        "request_id": "must be 8-128 characters: letters, digits and . _ : -",
        "offence.date": "must be a real calendar date",
        "offence.type": "is required",
        "participants[0].contact.email": "must be an email address",
        "participants[0].age": "must be a whole number of years from 1 to 120",
    }
    assert "Traceback" not in (error.details() or "")
    assert _stored(client) == before


def test_an_enum_number_the_proto_does_not_define_is_named(tenant):
    client = tenant.agency_client()
    request = _request(referral_draft(tenant.county))
    request.referral.offence.category = 999              # a newer client's value, or garbage
    request.referral.participants[0].vulnerabilities.append(77)
    _, violations = _refused(client, request)
    assert violations["offence.category"].startswith("must be one of: ")
    assert violations["participants[0].vulnerabilities[1]"].startswith("must be one of: ")


def test_an_oversized_request_is_refused_cleanly_and_the_service_stays_up(tenant):
    client = tenant.agency_client()
    before = _stored(client)
    draft = referral_draft(tenant.county)
    draft["reason"] = "x" * (300 * 1024)                 # beyond the 256 KiB message limit
    with pytest.raises(grpc.RpcError) as info:
        client.stub.SubmitReferral(_request(draft), metadata=client.md, timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _stored(client) == before
    assert client.submit(referral_draft(tenant.county)).referral_id       # still serving


def test_a_request_wrong_in_very_many_fields_still_gets_its_field_errors(tenant):
    """Listing every violation of a badly broken request would exceed gRPC's 8 KiB response
    metadata limit, and the client would get RESOURCE_EXHAUSTED with no field errors at all. The
    status lists as many as fit, then says how many more there are."""
    client = tenant.agency_client()
    request = referrals_pb2.SubmitReferralRequest(request_id="?")
    for _ in range(20):
        request.referral.participants.add(role=99, age=999, date_of_birth="soon", vulnerabilities=[50, 51, 52],
                                          contact={"email": "x", "phone": "y", "postcode": "z"})
    error, violations = _refused(client, request)
    assert violations["request_id"].startswith("must be 8-128 characters")
    assert violations["participants[0].role"].startswith("must be one of: ")
    assert violations["request"].startswith("has ") and "more invalid field(s) not listed here" in violations["request"]
    assert len(error.details()) <= 512


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
_enum = st.integers(min_value=0, max_value=20)
_participant = st.fixed_dictionaries({
    "role": _enum, "given_name": _text, "family_name": _text,
    "date_of_birth": st.one_of(_text, st.dates().map(str)), "age": st.integers(min_value=-5, max_value=200),
    "contact": st.fixed_dictionaries({"email": _text, "phone": _text, "postcode": _text, "preferred_channel": _enum}),
    "vulnerabilities": st.lists(_enum, max_size=4), "consent_to_contact": st.booleans(), "notes": _text,
})


@GENERATED
@given(agency_reference=_text, county=st.one_of(_text, st.just("")), offence_type=_text, category=_enum,
       offence_date=st.one_of(_text, st.dates().map(str)), reported=st.one_of(_text, st.dates().map(str)),
       initiator=st.integers(min_value=0, max_value=5), participants=st.lists(_participant, max_size=4),
       reason=_text, request_id=st.one_of(_text, st.uuids().map(str)))
def test_generated_requests_are_accepted_or_refused_field_by_field_never_an_internal_error(
        tenant, agency_reference, county, offence_type, category, offence_date, reported, initiator, participants,
        reason, request_id):
    client = tenant.agency_client()
    request = referrals_pb2.SubmitReferralRequest(request_id=request_id)
    draft = request.referral
    draft.agency_reference, draft.county, draft.reason = agency_reference, county, reason
    draft.offence.type, draft.offence.category = offence_type, category
    draft.offence.date, draft.offence.reported_date = offence_date, reported
    draft.initiated_by = initiator
    for p in participants:
        item = draft.participants.add(role=p["role"], given_name=p["given_name"], family_name=p["family_name"],
                                      date_of_birth=p["date_of_birth"], age=p["age"],
                                      consent_to_contact=p["consent_to_contact"], notes=p["notes"])
        item.contact.email, item.contact.phone = p["contact"]["email"], p["contact"]["phone"]
        item.contact.postcode, item.contact.preferred_channel = p["contact"]["postcode"], p["contact"]["preferred_channel"]
        item.vulnerabilities.extend(p["vulnerabilities"])
    try:
        reply = client.stub.SubmitReferral(request, metadata=client.md, timeout=10)
    except grpc.RpcError as error:
        assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS), \
            (error.code(), error.details())
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            violations = _violations(error)
            assert violations and all(field and rule for field, rule in violations.items())
    else:
        assert reply.referral_id and client.get(reply.referral_id).referral_id == reply.referral_id
