"""gRPC entrypoint of the scheduling service: translates messages and calls the service layer."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from mend.scheduling.v1 import scheduling_pb2 as pb
from mend.scheduling.v1 import scheduling_pb2_grpc as pb_grpc
from mend_common.errors import FieldViolation, ValidationFailed
from mend_common.grpc_server import current_principal
from mend_common.proto_convert import timestamp

from ..domain.records import Facilitator, Meeting, MeetingRequest, Venue
from ..service_layer import services

SERVICE_NAMES = ["mend.scheduling.v1.SchedulingService"]


def _when(ts, field: str) -> datetime | None:
    """An unset Timestamp is None (not 1970), so a missing time is reported as missing; one
    outside the years 1-9999 (or with bad nanos) is invalid, named by its field."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    try:
        return ts.ToDatetime(tzinfo=timezone.utc)
    except (ValueError, OverflowError):
        raise ValidationFailed([FieldViolation(field, "must be a valid time (years 1-9999, nanos 0-999999999)")]) \
            from None


def _hours(items) -> list[dict]:
    return [{"weekday": h.weekday, "start": h.start, "end": h.end} for h in items]


def _pb_hours(items) -> list[pb.WeeklyHours]:
    return [pb.WeeklyHours(**h.as_dict()) for h in items]


def facilitator_to_pb(f: Facilitator, load_minutes: int = 0) -> pb.Facilitator:
    return pb.Facilitator(
        facilitator_id=f.facilitator_id, county=f.county, name=f.name, email=f.email, kind=f.kind,
        home_lat=f.home_lat, home_lon=f.home_lon, districts=list(f.districts), availability=_pb_hours(f.availability),
        max_hours_per_week=f.max_minutes_per_week / 60, vetting_date=f.vetting_date.isoformat(),
        vetting_expires_on=f.vetting_expires_on.isoformat(), training_level=f.training_level,
        accreditations=list(f.accreditations), languages=list(f.languages), conflicts=list(f.conflicts),
        absences=[pb.Absence(starts_at=timestamp(a.starts_at), ends_at=timestamp(a.ends_at), reason=a.reason)
                  for a in f.absences], active=f.active, version=f.version, booked_hours_this_week=load_minutes / 60)


def venue_to_pb(v: Venue) -> pb.Venue:
    return pb.Venue(
        venue_id=v.venue_id, county=v.county, name=v.name, address=v.address, lat=v.lat, lon=v.lon, kind=v.kind,
        neutral=v.neutral, accessibility=list(v.accessibility),
        rooms=[pb.Room(room_id=r.room_id, name=r.name, capacity=r.capacity, waiting_room=r.waiting_room)
               for r in v.rooms], separate_waiting_rooms=v.separate_waiting_rooms, opening=_pb_hours(v.opening),
        cost_per_hour_pence=v.cost_per_hour_pence, refreshments=v.refreshments, travel_notes=v.travel_notes,
        district=v.district, active=v.active, version=v.version)


def request_to_pb(r: MeetingRequest) -> pb.MeetingRequest:
    n = r.needs
    return pb.MeetingRequest(
        request_id=r.request_id, county=r.county, case_id=r.case_id, kind=r.kind,
        participant_ids=list(n.participant_ids), supervisee_ids=list(n.supervisee_ids),
        earliest=timestamp(r.earliest), latest=timestamp(r.latest), duration_minutes=r.duration_minutes,
        facilitators_needed=r.facilitators_needed, min_training_level=n.min_training_level,
        languages=list(n.languages), accessibility=list(n.accessibility), separate_waiting=n.separate_waiting,
        supporter_present=n.supporter_present, prison_venue_id=n.prison_venue_id, at_home=n.at_home,
        near_lat=n.near_lat, near_lon=n.near_lon, district=n.district, attendees=r.attendees,
        required_accreditations=list(n.required_accreditations), status=r.status, meeting_id=r.meeting_id or "")


def meeting_to_pb(m: Meeting, venue_name: str = "") -> pb.Meeting:
    return pb.Meeting(
        meeting_id=m.meeting_id, county=m.county, case_id=m.case_id, request_id=m.request_id, kind=m.kind,
        starts_at=timestamp(m.starts_at), ends_at=timestamp(m.ends_at), venue_id=m.venue_id, venue_name=venue_name,
        room_id=m.room_id, participant_ids=list(m.participant_ids), facilitator_ids=list(m.facilitator_ids),
        status=m.status, sequence=m.sequence, version=m.version, plan_measures=list(m.plan_measures),
        history=[pb.MeetingChange(at=timestamp(h.at), by=h.by, action=h.action, reason=h.reason,
                                  before_json=json.dumps(h.before), after_json=json.dumps(h.after))
                 for h in m.history])


def proposal_to_pb(p: dict) -> pb.AllocationProposal:
    def at(text):
        return timestamp(datetime.fromisoformat(text))
    return pb.AllocationProposal(
        proposal_id=p["proposal_id"], county=p["county"], status=p["status"],
        placements=[pb.Placement(request_id=x["request_id"], starts_at=at(x["starts_at"]), ends_at=at(x["ends_at"]),
                                 facilitator_ids=x["facilitator_ids"], venue_id=x["venue_id"], room_id=x["room_id"])
                    for x in p["placements"]],
        not_placed=[pb.NotPlaced(request_id=u["request_id"], reasons=u["reasons"]) for u in p["not_placed"]],
        report=pb.SolveReport(**p["report"]), created_at=timestamp(p["created_at"]), created_by=p["created_by"])


def _placement(p: pb.Placement, field: str = "placement") -> dict:
    return {"request_id": p.request_id, "starts_at": _when(p.starts_at, f"{field}.starts_at"),
            "facilitator_ids": list(p.facilitator_ids),
            "venue_id": p.venue_id, "room_id": p.room_id}


def _calendar(data: bytes, filename: str, subscription_path: str = "") -> pb.CalendarFile:
    return pb.CalendarFile(filename=filename, content_type="text/calendar; charset=utf-8", data=data,
                           subscription_path=subscription_path)


class SchedulingServicer(pb_grpc.SchedulingServiceServicer):
    def __init__(self, uow_factory, cases, gate, settings):
        self.uow, self.cases, self.gate, self.settings = uow_factory, cases, gate, settings

    # -- facilitators and venues -------------------------------------------------------------
    def SaveFacilitator(self, request, context):
        data = {
            "facilitator_id": request.facilitator_id, "county": request.county, "name": request.name,
            "email": request.email, "kind": request.kind, "home_lat": request.home_lat, "home_lon": request.home_lon,
            "districts": list(request.districts), "availability": _hours(request.availability),
            "max_hours_per_week": request.max_hours_per_week, "vetting_date": request.vetting_date,
            "vetting_expires_on": request.vetting_expires_on, "training_level": request.training_level,
            "accreditations": list(request.accreditations), "languages": list(request.languages),
            "conflicts": list(request.conflicts), "active": request.active if request.facilitator_id else True,
            "absences": [{"starts_at": _when(a.starts_at, f"absences[{i}].starts_at"),
                          "ends_at": _when(a.ends_at, f"absences[{i}].ends_at"), "reason": a.reason}
                         for i, a in enumerate(request.absences)], "version": request.version}
        return facilitator_to_pb(services.save_facilitator(self.uow, current_principal(), data))

    def GetFacilitator(self, request, context):
        f, load = services.get_facilitator(self.uow, current_principal(), request.facilitator_id)
        return facilitator_to_pb(f, load)

    def ListFacilitators(self, request, context):
        found = services.list_facilitators(self.uow, current_principal(), request.county, request.include_inactive)
        return pb.ListFacilitatorsResponse(facilitators=[facilitator_to_pb(f) for f in found])

    def SaveVenue(self, request, context):
        data = {
            "venue_id": request.venue_id, "county": request.county, "name": request.name, "address": request.address,
            "lat": request.lat, "lon": request.lon, "kind": request.kind, "neutral": request.neutral,
            "accessibility": list(request.accessibility),
            "rooms": [{"room_id": r.room_id, "name": r.name, "capacity": r.capacity, "waiting_room": r.waiting_room}
                      for r in request.rooms], "separate_waiting_rooms": request.separate_waiting_rooms,
            "opening": _hours(request.opening), "cost_per_hour_pence": request.cost_per_hour_pence,
            "refreshments": request.refreshments, "travel_notes": request.travel_notes, "district": request.district,
            "active": request.active if request.venue_id else True, "version": request.version}
        return venue_to_pb(services.save_venue(self.uow, current_principal(), data))

    def GetVenue(self, request, context):
        return venue_to_pb(services.get_venue(self.uow, current_principal(), request.venue_id))

    def ListVenues(self, request, context):
        return pb.ListVenuesResponse(venues=[venue_to_pb(v) for v in services.list_venues(
            self.uow, current_principal(), request.county)])

    # -- requests and proposals ---------------------------------------------------------------
    def RequestMeeting(self, request, context):
        data = {
            "county": request.county, "case_id": request.case_id, "kind": request.kind,
            "participant_ids": list(request.participant_ids), "supervisee_ids": list(request.supervisee_ids),
            "earliest": _when(request.earliest, "earliest"), "latest": _when(request.latest, "latest"),
            "duration_minutes": request.duration_minutes, "facilitators_needed": request.facilitators_needed,
            "min_training_level": request.min_training_level, "languages": list(request.languages),
            "accessibility": list(request.accessibility), "separate_waiting": request.separate_waiting,
            "supporter_present": request.supporter_present, "prison_venue_id": request.prison_venue_id,
            "at_home": request.at_home, "near_lat": request.near_lat, "near_lon": request.near_lon,
            "district": request.district, "attendees": request.attendees,
            "required_accreditations": list(request.required_accreditations)}
        return request_to_pb(services.request_meeting(self.uow, self.cases, current_principal(), data))

    def ListMeetingRequests(self, request, context):
        found = services.list_requests(self.uow, current_principal(), request.county, request.status)
        return pb.ListMeetingRequestsResponse(requests=[request_to_pb(r) for r in found])

    def WithdrawMeetingRequest(self, request, context):
        return request_to_pb(services.withdraw_request(self.uow, current_principal(), request.request_id,
                                                       request.reason))

    def ProposeAllocation(self, request, context):
        return proposal_to_pb(services.propose_allocation(
            self.uow, current_principal(), self.settings, county=request.county, request_ids=list(request.request_ids),
            horizon_start=request.horizon_start, weeks=request.weeks, time_limit=request.time_limit_seconds))

    def GetAllocationProposal(self, request, context):
        return proposal_to_pb(services.get_proposal(self.uow, current_principal(), request.proposal_id))

    def AcceptAllocationProposal(self, request, context):
        outcomes = services.accept_proposal(self.uow, self.gate, current_principal(), request.proposal_id,
                                            list(request.request_ids), [_placement(e, f"edits[{i}]") for i, e in enumerate(request.edits)])
        return pb.AcceptAllocationProposalResponse(outcomes=[pb.BookingOutcome(**o) for o in outcomes])

    # -- meetings -----------------------------------------------------------------------------
    def _meeting(self, m: Meeting) -> pb.Meeting:
        name = ""
        if m.venue_id:
            with self.uow() as uow:
                venue = uow.repo.venue(m.venue_id)
            name = venue.name if venue else ""
        return meeting_to_pb(m, name)

    def ScheduleMeeting(self, request, context):
        return self._meeting(services.schedule_meeting(self.uow, self.gate, current_principal(), request.request_id,
                                                       _placement(request.placement)))

    def RescheduleMeeting(self, request, context):
        return self._meeting(services.reschedule_meeting(
            self.uow, self.gate, current_principal(), request.meeting_id, _placement(request.placement),
            request.reason, request.expected_version))

    def ReplanMeeting(self, request, context):
        return proposal_to_pb(services.replan_meeting(self.uow, current_principal(), self.settings, request.meeting_id,
                                                      request.reason, request.time_limit_seconds))

    def CancelMeeting(self, request, context):
        return self._meeting(services.cancel_meeting(self.uow, current_principal(), request.meeting_id,
                                                     request.reason, request.expected_version))

    def GetMeeting(self, request, context):
        return self._meeting(services.get_meeting(self.uow, current_principal(), request.meeting_id))

    def ListMeetings(self, request, context):
        found = services.list_meetings(
            self.uow, current_principal(), county=request.county, case_id=request.case_id,
            facilitator_id=request.facilitator_id, starts_from=_when(getattr(request, "from"), "from"),
            starts_before=_when(request.to, "to"), include_cancelled=request.include_cancelled)
        return pb.ListMeetingsResponse(meetings=[meeting_to_pb(m) for m in found])

    # -- calendars ----------------------------------------------------------------------------
    def FacilitatorCalendar(self, request, context):
        data, token = services.facilitator_calendar(self.uow, current_principal(), self.settings,
                                                    request.facilitator_id)
        path = f"/calendars/facilitators/{request.facilitator_id}.ics?token={token}" if token else ""
        return _calendar(data, f"mend-{request.facilitator_id}.ics", path)

    def MeetingCalendar(self, request, context):
        data = services.meeting_calendar(self.uow, current_principal(), self.settings, request.meeting_id)
        return _calendar(data, f"meeting-{request.meeting_id}.ics")


def registrars(uow_factory, cases, gate, settings):
    servicer = SchedulingServicer(uow_factory, cases, gate, settings)
    return [lambda server: pb_grpc.add_SchedulingServiceServicer_to_server(servicer, server)]
