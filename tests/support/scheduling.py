"""Driving the real scheduling service over gRPC in cross-service tests."""
from __future__ import annotations

import functools
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from google.protobuf.timestamp_pb2 import Timestamp

from mend.cases.v1 import cases_pb2
from mend.scheduling.v1 import scheduling_pb2 as pb
from tests.support.case_flow import Cases, assess_everyone, opened_case, parties, to_risk_and_safety
from tests.support.waiting import wait_for

LONDON = ZoneInfo("Europe/London")
WEEKDAYS_9_TO_5 = [pb.WeeklyHours(weekday=d, start="09:00", end="17:00") for d in ("mon", "tue", "wed", "thu", "fri")]
OPEN_8_TO_21 = [pb.WeeklyHours(weekday=d, start="08:00", end="21:00") for d in ("mon", "tue", "wed", "thu", "fri")]


class Scheduling:
    """The SchedulingService stub with a staff token: `Scheduling(tenant).GetMeeting(request)`."""

    def __init__(self, tenant, *roles, subject="coord-1"):
        self.stub, self.md = tenant.scheduling_stub(*(roles or ("coordinator",)), subject=subject)

    def __getattr__(self, method):
        call = getattr(self.stub, method)
        # An allocation run takes up to its time limit (a few seconds here) on top of the call.
        return lambda request: call(request, metadata=self.md, timeout=30)


def register_facilitator(tenant, name: str, *, training_level: str = "advanced", active: bool = True,
                         kind: str = "staff", hours: float = 30, languages=("en",)) -> pb.Facilitator:
    """A facilitator on the county's register, vetted until half a year from now."""
    stub, auth = tenant.scheduling_stub("coordinator", subject="coord-1")
    vetted = date.today() - timedelta(days=180)
    saved = stub.SaveFacilitator(pb.Facilitator(
        county=tenant.county, name=name, email=f"{name.split()[0].lower()}@example.org", kind=kind, home_lat=51.58,
        home_lon=-2.99, availability=WEEKDAYS_9_TO_5, max_hours_per_week=hours, vetting_date=vetted.isoformat(),
        vetting_expires_on=(vetted + timedelta(days=360)).isoformat(), training_level=training_level,
        languages=list(languages)), metadata=auth, timeout=10)
    if not active:
        retired = pb.Facilitator()
        retired.CopyFrom(saved)
        retired.active = False
        saved = stub.SaveFacilitator(retired, metadata=auth, timeout=10)
    return saved


def save_venue(tenant, name: str = "Market Street Community Centre", *, separate_waiting: bool = True) -> pb.Venue:
    """A neutral community venue open weekdays 08:00-21:00, with one meeting room and (by default)
    two waiting rooms, so the parties arrive and wait apart."""
    rooms = [pb.Room(name="Main room", capacity=12)]
    if separate_waiting:
        rooms += [pb.Room(name="Waiting room A", capacity=4, waiting_room=True),
                  pb.Room(name="Waiting room B", capacity=4, waiting_room=True)]
    return Scheduling(tenant).SaveVenue(pb.Venue(
        county=tenant.county, name=name, address="1 Market Street, Newport NP20 1AA", lat=51.587, lon=-2.998,
        kind="community_room", neutral=True, accessibility=["step_free", "hearing_loop"], rooms=rooms,
        separate_waiting_rooms=separate_waiting, opening=OPEN_8_TO_21, cost_per_hour_pence=1500))


def meeting_room(venue: pb.Venue) -> pb.Room:
    return next(r for r in venue.rooms if not r.waiting_room)


# -- time ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def next_monday() -> date:
    """Next week's Monday in Europe/London (the service plans in local time), fixed for the test
    session: a run that goes past midnight on a Sunday keeps planning for the same week."""
    today = datetime.now(LONDON).date()
    return today + timedelta(days=7 - today.weekday())


def local(day_offset: int, hhmm: str) -> datetime:
    """A wall-clock time in London, `day_offset` days after next Monday."""
    return datetime.combine(next_monday() + timedelta(days=day_offset), time.fromisoformat(hhmm), tzinfo=LONDON)


def ts(when: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def instant(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=LONDON)


# -- cases and meetings ------------------------------------------------------------------------------
def cleared_case(tenant, *, to_preparation: bool = False) -> tuple[str, dict[str, str]]:
    """A case whose victim and responsible person have approved risk assessments: at risk and
    safety, or moved on to preparation and assessed again there (entering preparation makes the
    earlier assessments lapse). Returns the case id and its participants by role."""
    cases = Cases(tenant)
    _, case_id = opened_case(tenant)
    case = to_risk_and_safety(cases, case_id)
    assess_everyone(tenant, case)
    if to_preparation:
        case = cases.MoveStage(case_id=case_id, to_stage=cases_pb2.STAGE_PREPARATION, reason="assessed")
        risk = tenant.risk_client("coordinator", subject="coord-1")
        wait_for(lambda: not risk.list(case_id, current_only=True))     # the risk worker followed stage_changed
        assess_everyone(tenant, case)
    return case_id, parties(case)


def request_meeting(tenant, case_id: str, participant_ids, *, kind: str = "conference",
                    days: tuple[int, int] = (0, 4), **needs) -> pb.MeetingRequest:
    """A meeting request whose window is next week's Monday 08:00 to Friday 20:00 (London) by default."""
    return Scheduling(tenant).RequestMeeting(pb.MeetingRequest(
        county=tenant.county, case_id=case_id, kind=kind, participant_ids=list(participant_ids),
        earliest=ts(local(days[0], "08:00")), latest=ts(local(days[1], "20:00")), **needs))


def placement(starts_at: datetime, facilitators, venue: pb.Venue | None, request_id: str = "") -> pb.Placement:
    return pb.Placement(request_id=request_id, starts_at=ts(starts_at),
                        facilitator_ids=[f.facilitator_id if hasattr(f, "facilitator_id") else f for f in facilitators],
                        venue_id=venue.venue_id if venue else "", room_id=meeting_room(venue).room_id if venue else "")


def book(tenant, request_id: str, starts_at: datetime, facilitators, venue: pb.Venue | None) -> pb.Meeting:
    """Book a request by hand (every hard rule and the safety gate are checked)."""
    return Scheduling(tenant).ScheduleMeeting(pb.ScheduleMeetingRequest(
        request_id=request_id, placement=placement(starts_at, facilitators, venue)))
