"""Small builders for allocation tests: a facilitator, a venue, a meeting and a problem with
sensible defaults (one county, a week's horizon; facilitators available 09:00-17:00 and
venues open 08:00-21:00 every day for four weeks), so each test states only what matters.

Places: `NEAR` is next to the default venue and `FAR` some 30 km away, so a facilitator living at
`NEAR` is the tempting (cheap) choice."""
from __future__ import annotations

from dataclasses import replace

from mend_scheduling.domain.planning import (
    MINUTES_PER_DAY, Busy, FacilitatorSpec, MeetingSpec, Placement, PlanningProblem, Point, RoomSpec, VenueSpec,
    Window,
)

DAY = MINUTES_PER_DAY
HOUR = 60
COUNTY = "gwent"
NEAR = Point(51.60, -3.00)
VENUE_AT = Point(51.601, -3.001)
FAR = Point(51.87, -3.00)          # about 30 km north
HOME_AT = Point(51.62, -3.02)


def days_window(first_day: int, last_day: int, start_hour: float = 9, end_hour: float = 17) -> tuple[Window, ...]:
    """The same hours every day from first_day to last_day inclusive."""
    return tuple(Window(d * DAY + int(start_hour * HOUR), d * DAY + int(end_hour * HOUR))
                 for d in range(first_day, last_day + 1))


def facilitator(fid: str = "f-near", home: Point = NEAR, **fields) -> FacilitatorSpec:
    base = FacilitatorSpec(
        facilitator_id=fid, county=COUNTY, kind="staff", home=home, training_level="practitioner",
        vetting_expires_day=400, max_minutes_per_week=37 * HOUR, availability=days_window(0, 27))
    return replace(base, **fields)


def room(room_id: str, capacity: int = 10, busy: tuple[Busy, ...] = ()) -> RoomSpec:
    return RoomSpec(room_id, capacity, busy)


def venue(vid: str = "v-near", location: Point = VENUE_AT, rooms: tuple[RoomSpec, ...] | None = None,
          **fields) -> VenueSpec:
    base = VenueSpec(
        venue_id=vid, county=COUNTY, kind="community_room", location=location,
        rooms=rooms if rooms is not None else (room(f"{vid}-r1"),), opening=days_window(0, 27, 8, 21),
        neutral=True, separate_waiting_rooms=True,
        accessibility=frozenset({"step_free", "hearing_loop"}))
    return replace(base, **fields)


def meeting(mid: str = "m-1", **fields) -> MeetingSpec:
    base = MeetingSpec(
        meeting_id=mid, case_id=f"case-{mid}", county=COUNTY, kind="preparation_visit", duration=60,
        earliest=0, latest=7 * DAY, persons=frozenset({f"p-{mid}"}), near=VENUE_AT)
    return replace(base, **fields)


def problem(meetings, facilitators, venues, horizon_days: int = 7, **fields) -> PlanningProblem:
    return PlanningProblem(horizon_days=horizon_days, meetings=tuple(meetings), facilitators=tuple(facilitators),
                           venues=tuple(venues), **fields)


def at(day: int, hour: float) -> int:
    """Horizon minute of a day and hour."""
    return day * DAY + int(hour * HOUR)


def placement_of(plan, meeting_id: str) -> Placement | None:
    return next((p for p in plan.placements if p.meeting_id == meeting_id), None)
