"""Bad input over gRPC, against the live referrals and scheduling apis: INVALID_ARGUMENT carrying
a google.rpc.BadRequest that names every invalid field with the rule it breaks; an unknown enum
number is named like any other bad value; an oversized message is refused by gRPC itself; and
generated requests never produce an internal error. Nothing invalid is stored."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from google.protobuf.timestamp_pb2 import Timestamp

from mend.referrals.v1 import referrals_pb2
from mend.scheduling.v1 import scheduling_pb2
from mend_cli.pytest_stack import make_tenant, referral_draft
from mend_common.proto_convert import plain_to_message
from tests.support.case_flow import Cases, opened_case, parties
from tests.support.scheduling import (Scheduling, local, next_monday, register_facilitator, request_meeting,
                                      save_venue, ts)

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


# -- the scheduling service -------------------------------------------------------------------------
# Generated requests to the scheduling api: a valid request with a few of its fields replaced by
# generated values, from plausible ones (this county, the case and its participants, an existing
# facilitator or venue, the service's own words) to anything at all, so both the accepted and the
# refused paths are exercised. Times stay inside the range a Timestamp may hold; times outside it
# are tested on their own below.
SCHEDULING_REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                       grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED}
_words = st.one_of(_text, st.sampled_from(["", " ", "conference", "supervision", "indirect_session",
                                           "preparation_visit", "pre_prison_visit", "staff", "volunteer",
                                           "foundation", "advanced", "community_room", "prison", "step_free",
                                           "en", "cy", "mon", "sun", "09:00", "17:00", "24:00", "9:00",
                                           "\x00", "x" * 3000]))
_ids = st.one_of(st.uuids().map(str), st.sampled_from(["CASE", "VICTIM", "RESPONSIBLE", "FACILITATOR", "VENUE",
                                                        "", "not-a-uuid", "00000000-0000-0000-0000-000000000000"]),
                 _text)
_county = st.sampled_from(["OWN", "", "elsewhere"])
_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=-200, max_value=200))
_when = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59),
                 timezones=st.just(timezone.utc)),
    st.integers(min_value=-2 * 48, max_value=10 * 7 * 48).map(                   # around next week, on the grid
        lambda half_hours: local(0, "00:00") + timedelta(minutes=30 * half_hours)))
_hours = st.builds(dict, weekday=_words, start=_words, end=_words)
_day = st.one_of(st.dates().map(str), _words)
_weekdays = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in ("mon", "tue", "wed", "thu", "fri")]


def _mutated(base: dict, wild: dict, most: int = 4):
    """The valid `base` with up to `most` of its fields replaced by values drawn from `wild`."""
    return st.lists(st.sampled_from(sorted(wild)), unique=True, max_size=most).flatmap(
        lambda fields: st.fixed_dictionaries({f: wild[f] for f in fields}).map(lambda changes: {**base, **changes}))


@pytest.fixture(scope="module")
def scheduling_county(stack):
    """A county of its own with a case, a facilitator and a venue to name."""
    tenant = make_tenant(stack)
    _, case_id = opened_case(tenant)
    people = parties(Cases(tenant).GetCase(case_id=case_id))
    known = {"CASE": case_id, "VICTIM": people["victim"], "RESPONSIBLE": people["responsible_person"],
             "FACILITATOR": register_facilitator(tenant, "Gen Erated").facilitator_id,
             "VENUE": save_venue(tenant).venue_id}
    return tenant, known


def _resolved(tenant, known: dict, fields: dict) -> dict:
    """Placeholders replaced by the county's own names and ids, times made Timestamps."""
    def one(value):
        if isinstance(value, list):
            return [one(v) for v in value]
        if isinstance(value, dict):
            return {k: one(v) for k, v in value.items()}
        if isinstance(value, datetime):
            return ts(value)
        if value == "OWN":
            return tenant.county
        return known.get(value, value) if isinstance(value, str) else value
    return {k: one(v) for k, v in fields.items() if v is not None}


def _scheduling_outcome(call, read_back=None):
    """Accepted (and then readable), or refused with a status a caller can act on, never an
    internal error; INVALID_ARGUMENT names each field and rule."""
    try:
        reply = call()
    except grpc.RpcError as error:
        event(error.code().name)         # what the generated requests got (--hypothesis-show-statistics)
        assert error.code() in SCHEDULING_REFUSALS, (error.code(), error.details())
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            violations = _violations(error)
            assert violations and all(field and rule for field, rule in violations.items())
        return None
    event("OK")
    if read_back is not None:
        read_back(reply)
    return reply


@GENERATED
@given(fields=_mutated(
    {"county": "OWN", "case_id": "CASE", "kind": "indirect_session", "participant_ids": ["VICTIM"],
     "earliest": local(0, "08:00"), "latest": local(4, "20:00")},
    {"county": _county, "case_id": _ids, "kind": _words, "participant_ids": st.lists(_ids, max_size=4),
     "supervisee_ids": st.lists(_ids, max_size=3), "earliest": _when, "latest": _when,
     "duration_minutes": st.integers(min_value=-60, max_value=600), "facilitators_needed": st.integers(-2, 6),
     "min_training_level": _words, "languages": st.lists(_words, max_size=3),
     "accessibility": st.lists(_words, max_size=3), "separate_waiting": st.booleans(),
     "supporter_present": st.booleans(), "prison_venue_id": _ids, "at_home": st.booleans(), "near_lat": _number,
     "near_lon": _number, "district": _words, "attendees": st.integers(-5, 200),
     "required_accreditations": st.lists(_words, max_size=3)}))
def test_generated_meeting_requests_are_taken_or_refused_field_by_field_never_an_internal_error(
        scheduling_county, fields):
    tenant, known = scheduling_county
    request = scheduling_pb2.MeetingRequest(**_resolved(tenant, known, fields))
    sched = Scheduling(tenant)

    def listed(reply):
        assert reply.request_id and reply.status == "open" and reply.county == tenant.county
        assert reply.request_id in {r.request_id for r in sched.ListMeetingRequests(
            scheduling_pb2.ListMeetingRequestsRequest(county=tenant.county)).requests}

    _scheduling_outcome(lambda: sched.RequestMeeting(request), listed)


@GENERATED
@given(fields=_mutated(
    {"county": "OWN", "name": "Gen Erated", "email": "gen@example.org", "kind": "volunteer",
     "availability": _weekdays, "max_hours_per_week": 6.0, "vetting_date": "2026-06-01",
     "vetting_expires_on": "2027-05-31", "training_level": "practitioner", "languages": ["en", "cy"]},
    {"facilitator_id": _ids, "version": st.integers(-1, 3), "county": _county, "name": _words,
     "email": st.one_of(_words, st.emails()), "kind": _words, "home_lat": _number, "home_lon": _number,
     "districts": st.lists(_words, max_size=3), "availability": st.lists(_hours, max_size=4),
     "max_hours_per_week": _number, "vetting_date": _day, "vetting_expires_on": _day, "training_level": _words,
     "accreditations": st.lists(_words, max_size=3), "languages": st.lists(_words, max_size=3),
     "conflicts": st.lists(_ids, max_size=3),
     "absences": st.lists(st.builds(dict, starts_at=_when, ends_at=_when, reason=_words), max_size=3),
     "active": st.booleans()}))
def test_generated_facilitators_are_saved_or_refused_field_by_field_never_an_internal_error(scheduling_county,
                                                                                           fields):
    tenant, known = scheduling_county
    fields = _resolved(tenant, known, fields)
    fields["availability"] = [scheduling_pb2.WeeklyHours(**h) for h in fields.get("availability", [])]
    fields["absences"] = [scheduling_pb2.Absence(**{k: v for k, v in a.items() if v is not None})
                          for a in fields.get("absences", [])]
    request = scheduling_pb2.Facilitator(**fields)
    sched = Scheduling(tenant)

    def readable(reply):
        assert reply.facilitator_id and reply.county == tenant.county and reply.version >= 1
        read = sched.GetFacilitator(scheduling_pb2.GetFacilitatorRequest(facilitator_id=reply.facilitator_id))
        assert (read.name, read.version, len(read.absences)) == (reply.name, reply.version, len(reply.absences))

    _scheduling_outcome(lambda: sched.SaveFacilitator(request), readable)


@GENERATED
@given(fields=_mutated(
    {"county": "OWN", "name": "Gen Hall", "address": "2 High Street", "lat": 51.5, "lon": -3.1,
     "kind": "school", "rooms": [{"name": "Hall", "capacity": 30}, {"name": "Side A", "capacity": 3,
                                                                   "waiting_room": True},
                                 {"name": "Side B", "capacity": 3, "waiting_room": True}],
     "separate_waiting_rooms": True, "opening": _weekdays},
    {"venue_id": _ids, "version": st.integers(-1, 3), "county": _county, "name": _words, "address": _words,
     "lat": _number, "lon": _number, "kind": _words, "neutral": st.booleans(),
     "accessibility": st.lists(_words, max_size=4),
     "rooms": st.lists(st.builds(dict, room_id=_ids, name=_words, capacity=st.integers(-5, 1000),
                                 waiting_room=st.booleans()), max_size=4),
     "separate_waiting_rooms": st.booleans(), "opening": st.lists(_hours, max_size=4),
     "cost_per_hour_pence": st.integers(-10, 2_000_000), "refreshments": _words, "travel_notes": _words,
     "district": _words, "active": st.booleans()}))
def test_generated_venues_are_saved_or_refused_field_by_field_never_an_internal_error(scheduling_county, fields):
    tenant, known = scheduling_county
    fields = _resolved(tenant, known, fields)
    fields["rooms"] = [scheduling_pb2.Room(**r) for r in fields.get("rooms", [])]
    fields["opening"] = [scheduling_pb2.WeeklyHours(**h) for h in fields.get("opening", [])]
    request = scheduling_pb2.Venue(**fields)
    sched = Scheduling(tenant)

    def readable(reply):
        assert reply.venue_id and reply.county == tenant.county and reply.version >= 1
        read = sched.GetVenue(scheduling_pb2.GetVenueRequest(venue_id=reply.venue_id))
        assert (read.name, read.version, len(read.rooms)) == (reply.name, reply.version, len(reply.rooms))

    _scheduling_outcome(lambda: sched.SaveVenue(request), readable)


def test_an_unset_time_is_missing_and_a_bad_placement_is_named(tenant):
    """gRPC's default Timestamp (1970) is no time at all: it is reported as missing. A placement
    is checked field by field before anything is looked up."""
    sched = Scheduling(tenant)
    _, case_id = opened_case(tenant)
    victim = parties(Cases(tenant).GetCase(case_id=case_id))["victim"]
    with pytest.raises(grpc.RpcError) as info:
        sched.RequestMeeting(scheduling_pb2.MeetingRequest(county=tenant.county, case_id=case_id, kind="conference",
                                                           participant_ids=[victim, victim], duration_minutes=45))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(info.value) == {
        "earliest": "is required: the first time the meeting may start",
        "latest": "is required: the time the meeting must be over by",
        "participant_ids": "must not name anyone twice",
        "duration_minutes": "must be a multiple of 30 minutes"}
    with pytest.raises(grpc.RpcError) as info:
        nowhere = scheduling_pb2.Placement(facilitator_ids=["x", "x"], room_id=str(uuid.uuid4()))
        sched.ScheduleMeeting(scheduling_pb2.ScheduleMeetingRequest(request_id="nope", placement=nowhere))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _violations(info.value) == {
        "request_id": "must be a UUID", "placement.starts_at": "is required",
        "placement.facilitator_ids[0]": "must be a UUID", "placement.facilitator_ids[1]": "must be a UUID",
        "placement.facilitator_ids": "must not name a facilitator twice",
        "placement.room_id": "must be empty for a home visit (no venue)"}
    assert list(sched.ListMeetingRequests(scheduling_pb2.ListMeetingRequestsRequest()).requests) == []


# A Timestamp outside 0001-01-01..9999-12-31 (or with nanos outside 0..999,999,999) is something no
# honest client sends, but any client can: the service must name the field, not fail.
OUT_OF_RANGE = [Timestamp(seconds=2 ** 40), Timestamp(seconds=-2 ** 40), Timestamp(seconds=1_900_000_000, nanos=-1)]


@pytest.mark.parametrize("bad", OUT_OF_RANGE, ids=["far-future", "far-past", "negative-nanos"])
@pytest.mark.parametrize("method", ["RequestMeeting", "SaveFacilitator", "ScheduleMeeting", "ListMeetings"])
def test_a_time_outside_what_a_timestamp_may_hold_is_named_not_an_internal_error(tenant, method, bad):
    sched = Scheduling(tenant)
    fine = ts(local(2, "10:00"))
    requests_ = {
        "RequestMeeting": lambda: scheduling_pb2.MeetingRequest(
            county=tenant.county, case_id=str(uuid.uuid4()), kind="conference", participant_ids=[str(uuid.uuid4())],
            earliest=bad, latest=fine),
        "SaveFacilitator": lambda: scheduling_pb2.Facilitator(
            county=tenant.county, name="Tim Stamp", email="tim@example.org", kind="staff",
            availability=[scheduling_pb2.WeeklyHours(weekday="mon", start="09:00", end="17:00")],
            max_hours_per_week=10, vetting_date="2026-06-01", vetting_expires_on="2027-05-31",
            training_level="advanced", absences=[scheduling_pb2.Absence(starts_at=bad, ends_at=fine)]),
        "ScheduleMeeting": lambda: scheduling_pb2.ScheduleMeetingRequest(
            request_id=str(uuid.uuid4()), placement=scheduling_pb2.Placement(starts_at=bad,
                                                                             facilitator_ids=[str(uuid.uuid4())])),
        "ListMeetings": lambda: scheduling_pb2.ListMeetingsRequest(county=tenant.county, to=bad),
    }
    with pytest.raises(grpc.RpcError) as info:
        getattr(sched, method)(requests_[method]())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (info.value.code(), info.value.details())
    assert _violations(info.value)


def test_an_absence_at_the_start_of_time_neither_breaks_allocation_nor_booking(tenant):
    sched = Scheduling(tenant)
    registered = register_facilitator(tenant, "Ada Early")
    changed = scheduling_pb2.Facilitator()
    changed.CopyFrom(registered)
    changed.absences.add(starts_at=ts(datetime(1, 1, 1, tzinfo=timezone.utc)),
                         ends_at=ts(datetime(1, 1, 2, tzinfo=timezone.utc)), reason="typed the year wrong")
    try:
        sched.SaveFacilitator(changed)
    except grpc.RpcError as refused:      # refusing such an absence outright is as good
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
        return
    save_venue(tenant, separate_waiting=False)
    _, case_id = opened_case(tenant)
    victim = parties(Cases(tenant).GetCase(case_id=case_id))["victim"]
    wanted = request_meeting(tenant, case_id, [victim], kind="preparation_visit")
    proposal = sched.ProposeAllocation(scheduling_pb2.ProposeAllocationRequest(
        county=tenant.county, horizon_start=next_monday().isoformat(), weeks=1, time_limit_seconds=1))
    assert [p.request_id for p in proposal.placements] == [wanted.request_id]
    [outcome] = sched.AcceptAllocationProposal(scheduling_pb2.AcceptAllocationProposalRequest(
        proposal_id=proposal.proposal_id)).outcomes
    assert outcome.booked, outcome


def test_a_horizon_at_the_end_of_the_calendar_is_refused_by_name(tenant):
    with pytest.raises(grpc.RpcError) as info:
        Scheduling(tenant).ProposeAllocation(scheduling_pb2.ProposeAllocationRequest(
            county=tenant.county, horizon_start="9999-12-27", weeks=8, time_limit_seconds=1))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (info.value.code(), info.value.details())
    assert "horizon_start" in _violations(info.value)
