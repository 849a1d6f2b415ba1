"""The allocation problem as plain data: what the optimiser is given and what it gives back.

Time is whole minutes from the plan's horizon start, which is a Monday at 00:00 local time
(Europe/London), so day = minute // 1440 and ISO week = day // 7. The service layer turns
dates and datetimes into these numbers and back; the optimiser never sees a clock.

Everything here is immutable, so one instance can be solved by the greedy baseline, by CP-SAT
and checked by the independent checker without any of them changing what the others see.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY


@dataclass(frozen=True)
class Point:
    """A place as latitude and longitude in degrees."""
    lat: float
    lon: float

    def km_to(self, other: "Point") -> float:
        """Great-circle distance in km (haversine). Road distance is longer, but the order of
        candidates, which is what the optimiser uses it for, is nearly always the same."""
        r = 6371.0
        p1, p2 = math.radians(self.lat), math.radians(other.lat)
        dp, dl = p2 - p1, math.radians(other.lon - self.lon)
        a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        return 2 * r * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True)
class Window:
    """A span of minutes [start, end) in horizon time."""
    start: int
    end: int

    def covers(self, start: int, end: int) -> bool:
        return self.start <= start and end <= self.end


@dataclass(frozen=True)
class Busy:
    """Time already taken (a booked meeting, leave, another commitment) in horizon minutes.
    `hours` counts towards the weekly limit when it is work (a booked meeting), not for leave."""
    start: int
    end: int
    counts_as_work: bool = True


@dataclass(frozen=True)
class FacilitatorSpec:
    facilitator_id: str
    county: str
    kind: str                           # staff | volunteer
    home: Point
    training_level: str                 # foundation | practitioner | advanced
    vetting_expires_day: int            # last horizon day (inclusive) the police vetting is valid; <0 = already expired
    max_minutes_per_week: int
    availability: tuple[Window, ...]    # when they can work, expanded over the horizon
    busy: tuple[Busy, ...] = ()         # existing bookings and leave
    languages: frozenset[str] = frozenset({"en"})
    accreditations: frozenset[str] = frozenset()
    conflicts: frozenset[str] = frozenset()   # case ids and person ids they must not work with
    districts: frozenset[str] = frozenset()   # districts they cover; empty = the whole county
    active: bool = True


@dataclass(frozen=True)
class RoomSpec:
    room_id: str
    capacity: int
    busy: tuple[Busy, ...] = ()


@dataclass(frozen=True)
class VenueSpec:
    venue_id: str
    county: str
    kind: str                           # community_room | police_station | probation_office | prison | school
    location: Point
    rooms: tuple[RoomSpec, ...]
    opening: tuple[Window, ...]         # opening hours expanded over the horizon
    neutral: bool = True
    separate_waiting_rooms: bool = False
    accessibility: frozenset[str] = frozenset()
    cost_per_hour_pence: int = 0
    district: str = ""


@dataclass(frozen=True)
class MeetingSpec:
    """A meeting to place. `persons` are the people in it (participants and supporters) and the
    case id, checked against facilitators' declared conflicts. A home visit has no venue: it
    happens at `home` and books no room."""
    meeting_id: str
    case_id: str
    county: str
    kind: str
    duration: int                       # minutes
    earliest: int                       # first minute it may start
    latest: int                         # last minute it may end
    facilitators_needed: int = 1
    min_training_level: str = "foundation"
    languages: frozenset[str] = frozenset()       # each must be spoken by at least one facilitator
    accessibility: frozenset[str] = frozenset()   # each must be offered by the venue
    separate_waiting: bool = False      # risk requires separate waiting rooms
    prison_venue_id: str = ""           # set: the meeting must be in this prison
    attendees: int = 2                  # people in the room besides facilitators
    persons: frozenset[str] = frozenset()
    pinned_facilitators: tuple[str, ...] = ()     # already allocated on the case: must be among those booked
    required_accreditations: frozenset[str] = frozenset()
    home: Point | None = None           # a home visit: at this place, no venue or room
    near: Point | None = None           # where the participants are, for their travel
    district: str = ""
    neutral_venue: bool = False         # a conference between the parties needs neutral ground


@dataclass(frozen=True)
class Placement:
    """Where and when one meeting happens and who facilitates it."""
    meeting_id: str
    start: int
    facilitator_ids: tuple[str, ...]
    venue_id: str = ""                  # empty for a home visit
    room_id: str = ""


@dataclass(frozen=True)
class Weights:
    """What the objective trades off, in points per unit. Placing a meeting always outweighs
    any amount of travel, waiting or imbalance, so the plan never leaves one out to save miles."""
    unplaced: int = 1_000_000
    travel_km: int = 10                 # per facilitator km, home to venue
    participant_km: int = 5             # per km from where the participants are to the venue
    waiting_day: int = 20               # per day between the earliest start and the meeting
    overload_hour: int = 30             # per hour a facilitator works above an even share of their capacity


@dataclass(frozen=True)
class PlanningProblem:
    horizon_days: int
    meetings: tuple[MeetingSpec, ...]
    facilitators: tuple[FacilitatorSpec, ...]
    venues: tuple[VenueSpec, ...]
    fixed: tuple[Placement, ...] = ()   # placements that must stay as they are (re-planning one meeting)
    weights: Weights = field(default_factory=Weights)
    slot_minutes: int = 30              # meetings start on this grid


@dataclass(frozen=True)
class Unplaced:
    meeting_id: str
    reasons: tuple[str, ...]            # plain sentences a coordinator can act on


@dataclass(frozen=True)
class SolveReport:
    method: str                         # greedy | cp-sat | cp-sat+greedy-fallback
    status: str                         # OPTIMAL | FEASIBLE | INFEASIBLE | UNKNOWN | MODEL_INVALID | GREEDY
    objective: float
    best_bound: float
    gap: float                          # (objective - bound) / max(1, |objective|)
    seconds: float
    seconds_to_first_feasible: float
    placed: int
    meetings: int


@dataclass(frozen=True)
class Plan:
    placements: tuple[Placement, ...]
    unplaced: tuple[Unplaced, ...]
    report: SolveReport
