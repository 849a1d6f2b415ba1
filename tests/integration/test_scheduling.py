"""The scheduling service over the running region (real gRPC, RabbitMQ, nameko workers, and a
database on SQLite and on PostgreSQL) with the real cases, risk and notifications services around
it: a coordinator's proposal for a case in preparation is accepted, booked and announced with an
.ics invitation; the risk service's safety gate keeps a conference off the calendar until every
participant has an approved assessment; a facilitator sees their own meeting and subscribes to
their calendar feed over HTTP; closing a case or withdrawing consent cancels the meetings it
affects; and bad requests are refused field by field, with the cases service deciding who takes
part. The service's own rules are tested against its database in
services/scheduling/tests/integration/test_scheduling_db.py."""
from __future__ import annotations

import uuid
from datetime import time, timedelta

import grpc
import icalendar
import requests

from mend.notifications.v1 import notifications_pb2
from mend.scheduling.v1 import scheduling_pb2 as pb
from tests.support.case_flow import Cases, assess_everyone, opened_case, parties, refused, to_risk_and_safety
from tests.support.scheduling import (LONDON, Scheduling, book, cleared_case, instant, local, meeting_room,
                                      next_monday, register_facilitator, request_meeting, save_venue, ts)
from tests.support.waiting import wait_for

# The standard referral's responsible person is 17: the risk service's assessment asks for a
# supporter present, which a conference's plan must provide. The parties also arrive and wait apart.
CONFERENCE_NEEDS = {"separate_waiting": True, "supporter_present": True}


def set_staff_contact(tenant, subject: str, email: str) -> None:
    """The notifications service's address book: a facilitator (by their facilitator id) gets email."""
    stub, md = tenant.notifications_stub("manager", subject="mgr-1")
    stub.SetStaffContact(notifications_pb2.StaffContact(county=tenant.county, subject=subject, name="Facilitator",
                                                        email=email, roles=["facilitator"], language="en",
                                                        active=True), metadata=md, timeout=10)


def calendar_mail(stack, address: str, meeting_id: str, method: str) -> list[icalendar.Calendar]:
    """The .ics calendars (of one method) the local mail server got for one meeting at one address."""
    found = []
    for message in stack.smtp.messages:
        if address not in str(message["To"]):
            continue
        for part in message.walk():
            if part.get_content_type() != "text/calendar":
                continue
            calendar = icalendar.Calendar.from_ical(part.get_payload(decode=True))
            if str(calendar.get("METHOD")) == method and any(
                    str(e["UID"]) == f"{meeting_id}@mend" for e in calendar.walk("VEVENT")):
                found.append(calendar)
    return found


def meeting(tenant, meeting_id: str, *roles, subject: str = "coord-1") -> pb.Meeting:
    return Scheduling(tenant, *roles, subject=subject).GetMeeting(pb.GetMeetingRequest(meeting_id=meeting_id))


def requests_by_id(tenant) -> dict[str, pb.MeetingRequest]:
    listed = Scheduling(tenant).ListMeetingRequests(pb.ListMeetingRequestsRequest(county=tenant.county))
    return {r.request_id: r for r in listed.requests}


def test_a_proposal_for_a_case_in_preparation_is_accepted_booked_and_announced(stack, tenant):
    sched = Scheduling(tenant)
    lead, second, third = (register_facilitator(tenant, name) for name in ("Alex Lead", "Bea Second", "Cy Third"))
    venue = save_venue(tenant)
    assert venue.separate_waiting_rooms and sum(r.waiting_room for r in venue.rooms) == 2
    case_id, people = cleared_case(tenant, to_preparation=True)
    # The case's allocated facilitator must facilitate its meetings: the scheduling service learns
    # who that is from the cases service.
    Cases(tenant).AllocateFacilitators(case_id=case_id, facilitator_ids=[lead.facilitator_id], reason="local")
    lead_email = f"lead-{uuid.uuid4().hex[:8]}@mend.example"
    set_staff_contact(tenant, lead.facilitator_id, lead_email)
    victim, responsible = people["victim"], people["responsible_person"]

    wanted = request_meeting(tenant, case_id, [victim, responsible], **CONFERENCE_NEEDS)
    assert (wanted.status, wanted.kind, wanted.duration_minutes, wanted.facilitators_needed) == \
        ("open", "conference", 180, 2)

    proposal = sched.ProposeAllocation(pb.ProposeAllocationRequest(
        county=tenant.county, request_ids=[wanted.request_id], horizon_start=next_monday().isoformat(), weeks=2,
        time_limit_seconds=5))
    report = proposal.report
    assert (report.placed, report.meetings) == (1, 1) and list(proposal.not_placed) == [], proposal
    assert report.status in ("OPTIMAL", "FEASIBLE"), report
    assert report.objective >= report.best_bound - 1e-6, report     # lower is better: the bound is below
    assert report.objective <= report.greedy_objective + 1e-6, report
    assert proposal.status == "proposed"
    [placed] = proposal.placements
    starts, ends = instant(placed.starts_at), instant(placed.ends_at)
    assert placed.request_id == wanted.request_id
    assert lead.facilitator_id in placed.facilitator_ids and len(set(placed.facilitator_ids)) == 2
    assert set(placed.facilitator_ids) <= {lead.facilitator_id, second.facilitator_id, third.facilitator_id}
    assert (placed.venue_id, placed.room_id) == (venue.venue_id, meeting_room(venue).room_id)
    assert ends - starts == timedelta(minutes=180)
    assert local(0, "08:00") <= starts and ends <= local(4, "20:00")
    # Inside the facilitators' weekly hours (09:00-17:00, London time).
    assert starts.astimezone(LONDON).time() >= time(9) and ends.astimezone(LONDON).time() <= time(17)
    # Nothing is booked before the coordinator accepts.
    assert requests_by_id(tenant)[wanted.request_id].status == "open"

    accepted = sched.AcceptAllocationProposal(pb.AcceptAllocationProposalRequest(proposal_id=proposal.proposal_id))
    [outcome] = accepted.outcomes
    assert (outcome.request_id, outcome.booked, list(outcome.reasons)) == (wanted.request_id, True, []), outcome
    booked = meeting(tenant, outcome.meeting_id)
    assert (booked.status, booked.case_id, booked.kind, booked.county) == ("scheduled", case_id, "conference",
                                                                          tenant.county)
    assert (booked.starts_at, booked.ends_at, booked.room_id) == (placed.starts_at, placed.ends_at, placed.room_id)
    assert set(booked.facilitator_ids) == set(placed.facilitator_ids) and booked.venue_name == venue.name
    assert set(booked.participant_ids) == {victim, responsible}
    assert set(booked.plan_measures) == {"co_facilitation", "separate_arrival_and_waiting",
                                       "supporter_present"}
    [change] = booked.history
    assert (change.action, change.by) == ("scheduled", "staff:coord-1") and proposal.proposal_id in change.reason
    assert sched.GetAllocationProposal(pb.GetAllocationProposalRequest(
        proposal_id=proposal.proposal_id)).status == "accepted"
    request = requests_by_id(tenant)[wanted.request_id]
    assert (request.status, request.meeting_id) == ("booked", booked.meeting_id)

    # meeting_scheduled reached the notifications service: the facilitator gets an invitation with
    # the meeting's own UID and time, and the victim (who agreed to email) is told.
    [invitation, *_] = wait_for(lambda: calendar_mail(stack, lead_email, booked.meeting_id, "REQUEST"), timeout=60)
    event = invitation.walk("VEVENT")[0]
    assert event.decoded("DTSTART") == starts
    notes, md = tenant.notifications_stub("coordinator", subject="coord-1")
    told = wait_for(lambda: [m for m in notes.ListMessages(notifications_pb2.ListMessagesRequest(case_id=case_id),
                                                           metadata=md, timeout=10).messages
                             if m.message_type == "meeting_scheduled" and m.status == "sent"
                             and m.recipient_id == victim], timeout=60)
    assert told[0].channel == "email"


def test_the_safety_gate_keeps_a_conference_off_the_calendar_until_everyone_is_assessed(tenant):
    sched = Scheduling(tenant)
    first, second = register_facilitator(tenant, "Dee First"), register_facilitator(tenant, "Eli Second")
    venue = save_venue(tenant)
    cases = Cases(tenant)
    _, case_id = opened_case(tenant)
    case = to_risk_and_safety(cases, case_id)          # consent given, nobody assessed yet
    people = parties(case)
    wanted = request_meeting(tenant, case_id, [people["victim"], people["responsible_person"]],
                             **CONFERENCE_NEEDS)
    starts = local(1, "10:00")

    code, message, _ = refused(lambda: book(tenant, wanted.request_id, starts, [first, second], venue))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "safety gate does not allow" in message and "no current approved risk assessment" in message, message

    # The optimiser plans it (the gate is asked when booking), but accepting books nothing.
    proposal = sched.ProposeAllocation(pb.ProposeAllocationRequest(
        county=tenant.county, request_ids=[wanted.request_id], horizon_start=next_monday().isoformat(), weeks=1,
        time_limit_seconds=2))
    assert proposal.report.placed == 1, proposal
    [outcome] = sched.AcceptAllocationProposal(pb.AcceptAllocationProposalRequest(
        proposal_id=proposal.proposal_id)).outcomes
    assert not outcome.booked and outcome.meeting_id == ""
    assert any("safety gate does not allow" in r for r in outcome.reasons), outcome

    assert list(sched.ListMeetings(pb.ListMeetingsRequest(county=tenant.county, case_id=case_id,
                                                          include_cancelled=True)).meetings) == []
    assert requests_by_id(tenant)[wanted.request_id].status == "open"
    assert sched.GetAllocationProposal(pb.GetAllocationProposalRequest(
        proposal_id=proposal.proposal_id)).status == "proposed"

    # Once both are assessed and approved, the very same booking goes through.
    assess_everyone(tenant, case)
    booked = book(tenant, wanted.request_id, starts, [first, second], venue)
    assert booked.status == "scheduled" and instant(booked.starts_at) == starts


def test_a_facilitator_sees_their_own_meeting_and_subscribes_to_their_calendar(stack, tenant):
    mine_f, other_f, idle_f = (register_facilitator(tenant, name) for name in ("Fay Mine", "Gus Other", "Hal Idle"))
    venue = save_venue(tenant)
    case_id, people = cleared_case(tenant)
    wanted = request_meeting(tenant, case_id, [people["victim"], people["responsible_person"]],
                             **CONFERENCE_NEEDS)
    starts = local(2, "13:00")
    booked = book(tenant, wanted.request_id, starts, [mine_f, other_f], venue)

    me = Scheduling(tenant, "facilitator", subject=mine_f.facilitator_id)
    seen = me.GetMeeting(pb.GetMeetingRequest(meeting_id=booked.meeting_id))
    assert seen.meeting_id == booked.meeting_id and [h.action for h in seen.history] == ["scheduled"]
    listed = me.ListMeetings(pb.ListMeetingsRequest(county=tenant.county)).meetings
    assert [m.meeting_id for m in listed] == [booked.meeting_id]
    assert me.GetFacilitator(pb.GetFacilitatorRequest(facilitator_id=mine_f.facilitator_id)).name == "Fay Mine"

    # A facilitator with no part in it sees nothing of it, nor anyone else's calendar.
    idle = Scheduling(tenant, "facilitator", subject=idle_f.facilitator_id)
    assert refused(lambda: idle.GetMeeting(pb.GetMeetingRequest(meeting_id=booked.meeting_id)))[0] == \
        grpc.StatusCode.NOT_FOUND
    assert refused(lambda: idle.MeetingCalendar(pb.GetMeetingRequest(meeting_id=booked.meeting_id)))[0] == \
        grpc.StatusCode.NOT_FOUND
    assert list(idle.ListMeetings(pb.ListMeetingsRequest(county=tenant.county)).meetings) == []
    assert refused(lambda: idle.FacilitatorCalendar(pb.FacilitatorCalendarRequest(
        facilitator_id=mine_f.facilitator_id)))[0] == grpc.StatusCode.NOT_FOUND

    feed = me.FacilitatorCalendar(pb.FacilitatorCalendarRequest(facilitator_id=mine_f.facilitator_id))
    assert feed.content_type.startswith("text/calendar")
    uid = f"{booked.meeting_id}@mend"
    assert uid in {str(e["UID"]) for e in icalendar.Calendar.from_ical(feed.data).walk("VEVENT")}
    invitation = icalendar.Calendar.from_ical(me.MeetingCalendar(pb.GetMeetingRequest(
        meeting_id=booked.meeting_id)).data)
    assert [str(e["UID"]) for e in invitation.walk("VEVENT")] == [uid]

    # A calendar app subscribes over plain HTTP with the secret path, no login.
    prefix = f"/calendars/facilitators/{mine_f.facilitator_id}.ics?token="
    assert feed.subscription_path.startswith(prefix) and len(feed.subscription_path) > len(prefix)
    base = stack.http_base("scheduling")
    response = requests.get(base + feed.subscription_path, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/calendar")
    subscribed = icalendar.Calendar.from_ical(response.content)
    events = {str(e["UID"]): e for e in subscribed.walk("VEVENT")}
    assert set(events) == {uid}
    assert events[uid].decoded("DTSTART") == starts and str(events[uid]["STATUS"]) != "CANCELLED"
    # Participants are never named in a calendar.
    assert all(pid.encode() not in response.content for pid in people.values())

    token = feed.subscription_path[len(prefix):]
    feed_url = f"{base}/calendars/facilitators/{mine_f.facilitator_id}.ics"
    wrong = [f"{feed_url}?token={'0' * len(token)}", f"{feed_url}?token={token[:-1]}", feed_url,
             f"{base}/calendars/facilitators/{other_f.facilitator_id}.ics?token={token}",     # someone else's feed
             f"{base}/calendars/facilitators/{uuid.uuid4()}.ics?token={token}"]
    for url in wrong:
        refused_feed = requests.get(url, timeout=10)
        assert refused_feed.status_code == 404, (url, refused_feed.status_code)
        assert b"BEGIN:VCALENDAR" not in refused_feed.content and booked.meeting_id not in refused_feed.text


def test_closing_the_case_cancels_its_future_meeting_and_tells_the_facilitator(stack, tenant):
    first, second = register_facilitator(tenant, "Ida First"), register_facilitator(tenant, "Jo Second")
    venue = save_venue(tenant)
    email = f"ida-{uuid.uuid4().hex[:8]}@mend.example"
    set_staff_contact(tenant, first.facilitator_id, email)
    case_id, people = cleared_case(tenant)
    conference = request_meeting(tenant, case_id, [people["victim"], people["responsible_person"]],
                                 **CONFERENCE_NEEDS)
    booked = book(tenant, conference.request_id, local(1, "10:00"), [first, second], venue)
    still_open = request_meeting(tenant, case_id, [people["victim"]], kind="indirect_session")

    Cases(tenant).CloseCase(case_id=case_id, reason="withdrawn", note="the victim no longer wishes to take part")

    cancelled = wait_for(lambda: (m := meeting(tenant, booked.meeting_id)).status == "cancelled" and m, timeout=30)
    assert cancelled.sequence == booked.sequence + 1 and cancelled.version > booked.version
    assert [h.action for h in cancelled.history] == ["scheduled", "cancelled"]
    assert (cancelled.history[-1].by, cancelled.history[-1].reason) == ("service:scheduling", "the case was closed")
    known = requests_by_id(tenant)
    assert known[conference.request_id].status == "withdrawn" and known[still_open.request_id].status == "withdrawn"

    # meeting_cancelled reached the notifications service: the facilitator gets the cancellation.
    [cancellation, *_] = wait_for(lambda: calendar_mail(stack, email, booked.meeting_id, "CANCEL"), timeout=60)
    assert str(cancellation.walk("VEVENT")[0]["STATUS"]) == "CANCELLED"
    # Their subscribed feed keeps it, marked cancelled, so calendar apps drop it.
    feed = Scheduling(tenant, "facilitator", subject=first.facilitator_id).FacilitatorCalendar(
        pb.FacilitatorCalendarRequest(facilitator_id=first.facilitator_id))
    [event] = icalendar.Calendar.from_ical(feed.data).walk("VEVENT")
    assert str(event["UID"]) == f"{booked.meeting_id}@mend" and str(event["STATUS"]) == "CANCELLED"


def test_withdrawn_consent_cancels_only_the_meetings_that_person_is_in(tenant):
    first, second = register_facilitator(tenant, "Kit First"), register_facilitator(tenant, "Lou Second")
    venue = save_venue(tenant)
    case_id, people = cleared_case(tenant)
    victim, responsible = people["victim"], people["responsible_person"]
    conference = request_meeting(tenant, case_id, [victim, responsible], **CONFERENCE_NEEDS)
    together = book(tenant, conference.request_id, local(1, "10:00"), [first, second], venue)
    victim_only = request_meeting(tenant, case_id, [victim], kind="indirect_session")
    alone = book(tenant, victim_only.request_id, local(2, "10:00"), [first], venue)
    visit = request_meeting(tenant, case_id, [responsible], kind="preparation_visit")

    Cases(tenant).RecordConsent(case_id=case_id, participant_id=responsible, status="withdrawn",
                                note="does not want to meet after all")

    cancelled = wait_for(lambda: (m := meeting(tenant, together.meeting_id)).status == "cancelled" and m,
                         timeout=30)
    assert cancelled.history[-1].reason == "a participant withdrew consent"
    assert meeting(tenant, alone.meeting_id).status == "scheduled"       # the victim's own session goes ahead
    known = requests_by_id(tenant)
    assert (known[conference.request_id].status, known[visit.request_id].status,
            known[victim_only.request_id].status) == ("withdrawn", "withdrawn", "booked")
    # Nor can they be asked to a meeting again: the cases service says they withdrew.
    code, _, details = refused(lambda: request_meeting(tenant, case_id, [responsible], kind="preparation_visit"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == [("participant_ids[0]", "has withdrawn consent or had their process stopped")]


def test_bad_meeting_requests_are_refused_field_by_field_and_nothing_is_stored(tenant):
    sched = Scheduling(tenant)
    _, case_id = opened_case(tenant)
    case = Cases(tenant).GetCase(case_id=case_id)
    victim = parties(case)["victim"]

    def ask(**fields):
        request = dict(county=tenant.county, case_id=case_id, kind="conference", participant_ids=[victim],
                       earliest=ts(local(0, "08:00")), latest=ts(local(4, "20:00")))
        request.update(fields)
        return refused(lambda: sched.RequestMeeting(pb.MeetingRequest(**{k: v for k, v in request.items()
                                                                          if v is not None})))

    code, _, details = ask(kind="", earliest=ts(local(3, "10:00")), latest=ts(local(1, "10:00")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    named = dict(details)
    assert set(named) == {"kind", "latest"}, details
    assert named["kind"].startswith("must be one of") and named["latest"] == "must be after earliest"

    # An unset time is missing (not 1 January 1970).
    code, _, details = ask(earliest=None, latest=None)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert {f for f, _ in details} == {"earliest", "latest"} and all("is required" in r for _, r in details)

    # The cases service decides who takes part in the case.
    code, _, details = ask(participant_ids=[victim, str(uuid.uuid4())])
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT,
                               [("participant_ids[1]", "must be a participant of the case")])
    # A case this county does not have is not found.
    assert ask(case_id=str(uuid.uuid4()))[0] == grpc.StatusCode.NOT_FOUND
    assert list(sched.ListMeetingRequests(pb.ListMeetingRequestsRequest(county=tenant.county)).requests) == []
