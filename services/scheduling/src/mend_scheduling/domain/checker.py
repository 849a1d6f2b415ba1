"""The independent checker: every hard rule of an allocation, and the objective, written plainly.

This module is the oracle the optimiser is tested against, so it shares no code with it: it works
from the problem's plain data with loops a reader can follow, never from the optimiser's
candidate sets. `violations` lists every breach as a sentence naming the meeting, facilitator or
room; `objective` scores a set of placements exactly as the optimiser defines the objective.

The objective (all terms whole points, weights from `problem.weights`):

- `unplaced` for every meeting of the problem that has no placement;
- for each placed meeting, at its place (the venue's location, or the home for a home visit):
  - `waiting_day` x (day of the start - day of the earliest start);
  - round(`participant_km` x km from `meeting.near` to the place), when `near` is given;
  - for each of its facilitators, round(`travel_km` x km from the facilitator's home to the place);
- for each facilitator, floor(`overload_hour` x overload minutes / 60), where overload minutes =
  max(0, minutes of placed meetings they facilitate - their even share). Their even share is
  capacity x demand // total capacity of their county, with
  capacity = sum over the horizon's weeks of max(0, max_minutes_per_week - minutes of busy work
  starting that week) for an active facilitator (0 if inactive),
  demand = sum over the county's meetings of duration x facilitators_needed, and
  total capacity = sum of the county's facilitators' capacities (share 0 when that is 0).

Distances are `Point.km_to` (great circle); `round` is Python's.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

from .planning import (
    MINUTES_PER_DAY, MINUTES_PER_WEEK, FacilitatorSpec, MeetingSpec, Placement, PlanningProblem, VenueSpec,
)
from .vocabulary import TRAINING_RANK


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def _inside_one(windows: Iterable, start: int, end: int) -> bool:
    return any(w.start <= start and end <= w.end for w in windows)


def violations(problem: PlanningProblem, placements: Sequence[Placement]) -> list[str]:
    """Every hard-constraint breach in `placements`, one sentence each; empty when the plan is valid."""
    meetings = {m.meeting_id: m for m in problem.meetings}
    facilitators = {f.facilitator_id: f for f in problem.facilitators}
    venues = {v.venue_id: v for v in problem.venues}
    rooms = {r.room_id: (v, r) for v in problem.venues for r in v.rooms}
    horizon_end = problem.horizon_days * MINUTES_PER_DAY
    out: list[str] = []

    # 12. each meeting placed at most once, ids known, fixed placements unchanged
    seen: dict[str, int] = defaultdict(int)
    for p in placements:
        seen[p.meeting_id] += 1
    for meeting_id, count in seen.items():
        if count > 1:
            out.append(f"meeting {meeting_id} is placed {count} times")
    for fixed in problem.fixed:
        if fixed not in placements:
            out.append(f"fixed placement of meeting {fixed.meeting_id} is missing or changed")

    valid: list[tuple[Placement, MeetingSpec]] = []   # placements whose meeting is known
    for p in placements:
        m = meetings.get(p.meeting_id)
        if m is None:
            out.append(f"placement for unknown meeting {p.meeting_id}")
            continue
        valid.append((p, m))
        out.extend(_meeting_violations(problem, p, m, facilitators, venues, rooms, horizon_end))

    # 9. double booking between meetings, per facilitator and per room
    by_facilitator: dict[str, list[tuple[Placement, MeetingSpec]]] = defaultdict(list)
    by_room: dict[str, list[tuple[Placement, MeetingSpec]]] = defaultdict(list)
    for p, m in valid:
        for fid in set(p.facilitator_ids):
            by_facilitator[fid].append((p, m))
        if p.room_id:
            by_room[p.room_id].append((p, m))
    for fid, items in sorted(by_facilitator.items()):
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                (p1, m1), (p2, m2) = items[i], items[j]
                if _overlaps(p1.start, p1.start + m1.duration, p2.start, p2.start + m2.duration):
                    out.append(f"facilitator {fid} is double booked: meetings {m1.meeting_id} and {m2.meeting_id} overlap")
    for room_id, items in sorted(by_room.items()):
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                (p1, m1), (p2, m2) = items[i], items[j]
                if _overlaps(p1.start, p1.start + m1.duration, p2.start, p2.start + m2.duration):
                    out.append(f"room {room_id} is double booked: meetings {m1.meeting_id} and {m2.meeting_id} overlap")

    # 6. weekly hours, each meeting and busy entry counted in the week it starts
    for fid, items in sorted(by_facilitator.items()):
        f = facilitators.get(fid)
        if f is None:
            continue
        minutes: dict[int, int] = defaultdict(int)
        for b in f.busy:
            if b.counts_as_work:
                minutes[b.start // MINUTES_PER_WEEK] += b.end - b.start
        weeks_with_meetings = set()
        for p, m in items:
            week = p.start // MINUTES_PER_WEEK
            minutes[week] += m.duration
            weeks_with_meetings.add(week)
        for week in sorted(weeks_with_meetings):
            if minutes[week] > f.max_minutes_per_week:
                out.append(f"facilitator {fid} works {minutes[week]} minutes in week {week + 1}, "
                           f"more than their {f.max_minutes_per_week}")
    return out


def _meeting_violations(problem: PlanningProblem, p: Placement, m: MeetingSpec, facilitators: dict,
                        venues: dict, rooms: dict, horizon_end: int) -> list[str]:
    out: list[str] = []
    mid = m.meeting_id
    start, end = p.start, p.start + m.duration
    day = start // MINUTES_PER_DAY

    # 1. time
    if start % problem.slot_minutes != 0:
        out.append(f"meeting {mid} starts at minute {start}, off the {problem.slot_minutes}-minute grid")
    if start < m.earliest or end > m.latest:
        out.append(f"meeting {mid} at minutes {start}-{end} is outside its window {m.earliest}-{m.latest}")
    if start < 0 or end > horizon_end:
        out.append(f"meeting {mid} at minutes {start}-{end} is outside the planning horizon")

    # 2. who
    ids = p.facilitator_ids
    if len(set(ids)) != len(ids):
        out.append(f"meeting {mid} lists a facilitator twice")
    if len(set(ids)) != m.facilitators_needed:
        out.append(f"meeting {mid} has {len(set(ids))} facilitators, needs {m.facilitators_needed}")
    for pinned in m.pinned_facilitators:
        if pinned not in ids:
            out.append(f"meeting {mid} is missing its pinned facilitator {pinned}")
    people = m.persons | {m.case_id}
    spoken: set[str] = set()
    for fid in set(ids):
        f: FacilitatorSpec | None = facilitators.get(fid)
        if f is None:
            out.append(f"meeting {mid} names unknown facilitator {fid}")
            continue
        spoken |= f.languages
        if f.county != m.county:
            out.append(f"facilitator {fid} works in {f.county}, meeting {mid} is in {m.county}")
        if not f.active:
            out.append(f"facilitator {fid} is inactive but booked for meeting {mid}")
        # 3. vetting
        if day > f.vetting_expires_day:
            out.append(f"facilitator {fid}'s police vetting has expired by day {day} of meeting {mid}")
        # 4. training and accreditations
        if TRAINING_RANK[f.training_level] < TRAINING_RANK[m.min_training_level]:
            out.append(f"facilitator {fid} ({f.training_level}) lacks {m.min_training_level} training for meeting {mid}")
        missing = m.required_accreditations - f.accreditations
        if missing:
            out.append(f"facilitator {fid} lacks accreditation {', '.join(sorted(missing))} for meeting {mid}")
        # 5. availability, busy entries, districts
        if not _inside_one(f.availability, start, end):
            out.append(f"facilitator {fid} is not available for all of meeting {mid} ({start}-{end})")
        for b in f.busy:
            if _overlaps(start, end, b.start, b.end):
                out.append(f"facilitator {fid} is already busy ({b.start}-{b.end}) during meeting {mid}")
        if f.districts and m.district and m.district not in f.districts:
            out.append(f"facilitator {fid} does not cover district {m.district} of meeting {mid}")
        # 7. conflicts of interest
        clash = f.conflicts & people
        if clash:
            out.append(f"facilitator {fid} has a declared conflict ({', '.join(sorted(clash))}) with meeting {mid}")
    # 8. languages
    for language in sorted(m.languages - spoken):
        out.append(f"nobody facilitating meeting {mid} speaks {language}")

    # 10 and 11. where
    if m.home is not None:
        if p.venue_id or p.room_id:
            out.append(f"home visit {mid} must not book venue or room (has {p.venue_id!r}/{p.room_id!r})")
        return out
    if not p.venue_id:
        out.append(f"meeting {mid} is not a home visit but has no venue")
        return out
    v: VenueSpec | None = venues.get(p.venue_id)
    if v is None:
        out.append(f"meeting {mid} is at unknown venue {p.venue_id}")
        return out
    room_entry = rooms.get(p.room_id)
    if room_entry is None or room_entry[0].venue_id != v.venue_id:
        out.append(f"meeting {mid} is in room {p.room_id!r}, not a room of venue {v.venue_id}")
        room = None
    else:
        room = room_entry[1]
    if v.county != m.county:
        out.append(f"venue {v.venue_id} is in {v.county}, meeting {mid} is in {m.county}")
    if room is not None:
        if room.capacity < m.attendees + m.facilitators_needed:
            out.append(f"room {room.room_id} seats {room.capacity}, meeting {mid} needs "
                       f"{m.attendees + m.facilitators_needed}")
        for b in room.busy:
            if _overlaps(start, end, b.start, b.end):
                out.append(f"room {room.room_id} is already booked ({b.start}-{b.end}) during meeting {mid}")
    if not _inside_one(v.opening, start, end):
        out.append(f"venue {v.venue_id} is not open for all of meeting {mid} ({start}-{end})")
    missing = m.accessibility - v.accessibility
    if missing:
        out.append(f"venue {v.venue_id} lacks {', '.join(sorted(missing))} needed by meeting {mid}")
    if m.separate_waiting and not v.separate_waiting_rooms:
        out.append(f"venue {v.venue_id} has no separate waiting rooms, needed by meeting {mid}")
    if m.neutral_venue and not v.neutral:
        out.append(f"venue {v.venue_id} is not neutral ground, needed by meeting {mid}")
    if m.prison_venue_id and v.venue_id != m.prison_venue_id:
        out.append(f"meeting {mid} must be in prison {m.prison_venue_id}, is at {v.venue_id}")
    if v.kind == "prison" and m.prison_venue_id != v.venue_id:
        out.append(f"prison {v.venue_id} only hosts visits to it, not meeting {mid}")
    return out


# --------------------------------------------------------------------------------------------------
def even_shares(problem: PlanningProblem) -> dict[str, int]:
    """Each facilitator's even share of their county's demand, in minutes (see module docstring)."""
    weeks = -(-problem.horizon_days // 7)
    capacity: dict[str, int] = {}
    for f in problem.facilitators:
        if not f.active:
            capacity[f.facilitator_id] = 0
            continue
        total = 0
        for week in range(weeks):
            work = sum(b.end - b.start for b in f.busy
                       if b.counts_as_work and b.start // MINUTES_PER_WEEK == week)
            total += max(0, f.max_minutes_per_week - work)
        capacity[f.facilitator_id] = total
    demand: dict[str, int] = defaultdict(int)
    for m in problem.meetings:
        demand[m.county] += m.duration * m.facilitators_needed
    county_capacity: dict[str, int] = defaultdict(int)
    for f in problem.facilitators:
        county_capacity[f.county] += capacity[f.facilitator_id]
    shares = {}
    for f in problem.facilitators:
        total = county_capacity[f.county]
        shares[f.facilitator_id] = capacity[f.facilitator_id] * demand[f.county] // total if total > 0 else 0
    return shares


def objective(problem: PlanningProblem, placements: Sequence[Placement]) -> int:
    """The objective value of `placements` (lower is better), as defined in the module docstring."""
    w = problem.weights
    meetings = {m.meeting_id: m for m in problem.meetings}
    facilitators = {f.facilitator_id: f for f in problem.facilitators}
    venues = {v.venue_id: v for v in problem.venues}
    placed = {p.meeting_id for p in placements if p.meeting_id in meetings}
    total = w.unplaced * sum(1 for m in problem.meetings if m.meeting_id not in placed)

    load: dict[str, int] = defaultdict(int)
    for p in placements:
        m = meetings.get(p.meeting_id)
        if m is None:
            continue
        venue = venues.get(p.venue_id)
        place = m.home if m.home is not None else (venue.location if venue is not None else None)
        total += w.waiting_day * (p.start // MINUTES_PER_DAY - m.earliest // MINUTES_PER_DAY)
        if m.near is not None and place is not None:
            total += round(w.participant_km * m.near.km_to(place))
        for fid in p.facilitator_ids:
            f = facilitators.get(fid)
            if f is not None and place is not None:
                total += round(w.travel_km * f.home.km_to(place))
            load[fid] += m.duration

    shares = even_shares(problem)
    for fid, minutes in load.items():
        overload = max(0, minutes - shares.get(fid, 0))
        total += w.overload_hour * overload // 60
    return int(total)
