"""From records and clock times to the optimiser's minutes, and back.

A horizon starts at local midnight (Europe/London) on a Monday. Minute m of the horizon is the
wall-clock time `start + m minutes`, so weekly hours like "Tuesday 09:00-17:00" stay 09:00-17:00
across a clock change; only the conversion to an instant (UTC, for storage) sees the shift.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

from .planning import (MINUTES_PER_DAY, Busy, FacilitatorSpec, MeetingSpec, PlanningProblem, Placement, Point, RoomSpec,
                       VenueSpec, Weights, Window)
from .records import Facilitator, Meeting, MeetingRequest, Venue, WeeklyHours

LOCAL = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class Horizon:
    start: date          # a Monday
    days: int

    @classmethod
    def weeks_from(cls, start: date, weeks: int) -> "Horizon":
        if start.weekday() != 0:
            raise ValueError("a horizon starts on a Monday")
        return cls(start, weeks * 7)

    @property
    def minutes(self) -> int:
        return self.days * MINUTES_PER_DAY

    def minute_of(self, instant: datetime) -> int:
        """The horizon minute of an instant (rounded down), which may fall outside the horizon."""
        local = instant.astimezone(LOCAL).replace(tzinfo=None)
        return int((local - datetime.combine(self.start, time())).total_seconds() // 60)

    def instant_of(self, minute: int) -> datetime:
        wall = datetime.combine(self.start, time()) + timedelta(minutes=minute)
        return wall.replace(tzinfo=LOCAL)

    def day_index(self, day: date) -> int:
        return (day - self.start).days

    def weekly(self, hours: Sequence[WeeklyHours]) -> tuple[Window, ...]:
        """Weekly hours laid out over every day of the horizon."""
        windows = []
        for day in range(self.days):
            weekday = (self.start + timedelta(days=day)).weekday()
            for h in hours:
                if h.weekday_index == weekday:
                    base = day * MINUTES_PER_DAY
                    windows.append(Window(base + h.start.hour * 60 + h.start.minute,
                                          base + h.end.hour * 60 + h.end.minute))
        return tuple(sorted(windows, key=lambda w: w.start))

    def clamp(self, start: datetime, end: datetime) -> tuple[int, int] | None:
        a, b = max(0, self.minute_of(start)), min(self.minutes, self.minute_of(end))
        return (a, b) if a < b else None


def _point(lat: float, lon: float) -> Point:
    return Point(lat, lon)


def facilitator_spec(h: Horizon, f: Facilitator, booked: Iterable[Meeting]) -> FacilitatorSpec:
    busy = []
    for a in f.absences:
        span = h.clamp(a.starts_at, a.ends_at)
        if span:
            busy.append(Busy(span[0], span[1], counts_as_work=False))
    for m in booked:
        # Meetings before the horizon still count towards the first week's hours if they are in it.
        start, end = h.minute_of(m.starts_at), h.minute_of(m.ends_at)
        if end > 0 and start < h.minutes:
            busy.append(Busy(start, end, counts_as_work=True))
    return FacilitatorSpec(
        facilitator_id=f.facilitator_id, county=f.county, kind=f.kind, home=_point(f.home_lat, f.home_lon),
        training_level=f.training_level,
        vetting_expires_day=h.day_index(f.vetting_expires_on) if f.vetting_date <= h.start else -1,
        max_minutes_per_week=f.max_minutes_per_week, availability=h.weekly(f.availability), busy=tuple(busy),
        languages=frozenset(f.languages), accreditations=frozenset(f.accreditations),
        conflicts=frozenset(f.conflicts), districts=frozenset(f.districts), active=f.active)


def venue_spec(h: Horizon, v: Venue, booked: Iterable[Meeting]) -> VenueSpec:
    by_room: dict[str, list[Busy]] = {}
    for m in booked:
        start, end = h.minute_of(m.starts_at), h.minute_of(m.ends_at)
        if end > 0 and start < h.minutes:
            by_room.setdefault(m.room_id, []).append(Busy(start, end))
    rooms = tuple(RoomSpec(r.room_id, r.capacity, tuple(by_room.get(r.room_id, ()))) for r in v.meeting_rooms)
    return VenueSpec(venue_id=v.venue_id, county=v.county, kind=v.kind, location=_point(v.lat, v.lon), rooms=rooms,
                     opening=h.weekly(v.opening), neutral=v.neutral, separate_waiting_rooms=v.separate_waiting_rooms,
                     accessibility=frozenset(v.accessibility), cost_per_hour_pence=v.cost_per_hour_pence,
                     district=v.district)


def meeting_spec(h: Horizon, r: MeetingRequest) -> MeetingSpec:
    n = r.needs
    earliest, latest = max(0, h.minute_of(r.earliest)), min(h.minutes, h.minute_of(r.latest))
    near = _point(n.near_lat, n.near_lon) if (n.near_lat or n.near_lon) else None
    return MeetingSpec(
        meeting_id=r.request_id, case_id=r.case_id, county=r.county, kind=r.kind, duration=r.duration_minutes,
        earliest=earliest, latest=max(earliest, latest), facilitators_needed=r.facilitators_needed,
        min_training_level=n.min_training_level, languages=frozenset(n.languages),
        accessibility=frozenset(n.accessibility), separate_waiting=n.separate_waiting,
        prison_venue_id=n.prison_venue_id, attendees=r.attendees, persons=r.persons,
        pinned_facilitators=r.pinned_facilitators, required_accreditations=frozenset(n.required_accreditations),
        home=(near or Point(0.0, 0.0)) if n.at_home else None, near=near, district=n.district,
        neutral_venue=r.kind == "conference")


def problem(h: Horizon, requests: Sequence[MeetingRequest], facilitators: Sequence[Facilitator],
            venues: Sequence[Venue], booked: Sequence[Meeting], *, fixed: Sequence[Placement] = (),
            weights: Weights | None = None) -> PlanningProblem:
    """The planning problem for these requests, with every live booking as time already taken."""
    by_facilitator: dict[str, list[Meeting]] = {}
    by_venue: dict[str, list[Meeting]] = {}
    for m in booked:
        if m.status != "scheduled":
            continue
        for f in m.facilitator_ids:
            by_facilitator.setdefault(f, []).append(m)
        if m.venue_id:
            by_venue.setdefault(m.venue_id, []).append(m)
    return PlanningProblem(
        horizon_days=h.days,
        meetings=tuple(meeting_spec(h, r) for r in requests),
        facilitators=tuple(facilitator_spec(h, f, by_facilitator.get(f.facilitator_id, ())) for f in facilitators),
        venues=tuple(venue_spec(h, v, by_venue.get(v.venue_id, ())) for v in venues),
        fixed=tuple(fixed), weights=weights or Weights())


def plan_measures(request: MeetingRequest, venue: Venue | None, facilitators: Sequence[Facilitator]) -> tuple[str, ...]:
    """The control measures a booking provides, as the risk service's safety gate names them."""
    measures = set()
    if len(facilitators) >= 2:
        measures.add("co_facilitation")
    if venue is not None and venue.separate_waiting_rooms:
        measures.add("separate_arrival_and_waiting")
    if venue is not None and venue.kind == "prison":
        measures.add("prison_venue")
    if request.needs.supporter_present:
        measures.add("supporter_present")
    if any(f.accreditations for f in facilitators):
        measures.add("specialist_facilitator")
    return tuple(sorted(measures))
