"""The scheduling service's records: facilitators, venues with rooms, meeting requests and
meetings. Plain data with the few rules that belong to one record; the allocation rules that
span records live in planning, checker and allocation."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, time

from .vocabulary import DEFAULT_FACILITATORS, DEFAULT_MINUTES, TRAINING_RANK, WEEKDAYS


@dataclass(frozen=True)
class WeeklyHours:
    weekday: str        # mon..sun
    start: time
    end: time

    @property
    def weekday_index(self) -> int:
        return WEEKDAYS.index(self.weekday)

    def as_dict(self) -> dict:
        return {"weekday": self.weekday, "start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M")}

    @classmethod
    def from_dict(cls, d: dict) -> "WeeklyHours":
        return cls(d["weekday"], time.fromisoformat(d["start"]), time.fromisoformat(d["end"]))


@dataclass(frozen=True)
class Absence:
    starts_at: datetime
    ends_at: datetime
    reason: str = ""

    def as_dict(self) -> dict:
        return {"starts_at": self.starts_at.isoformat(), "ends_at": self.ends_at.isoformat(), "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict) -> "Absence":
        return cls(datetime.fromisoformat(d["starts_at"]), datetime.fromisoformat(d["ends_at"]), d.get("reason", ""))


@dataclass(frozen=True)
class Facilitator:
    facilitator_id: str
    county: str
    name: str
    email: str
    kind: str
    home_lat: float
    home_lon: float
    districts: tuple[str, ...]
    availability: tuple[WeeklyHours, ...]
    max_minutes_per_week: int
    vetting_date: date
    vetting_expires_on: date
    training_level: str
    accreditations: tuple[str, ...] = ()
    languages: tuple[str, ...] = ("en",)
    conflicts: tuple[str, ...] = ()
    absences: tuple[Absence, ...] = ()
    active: bool = True
    version: int = 1

    def vetting_valid_on(self, day: date) -> bool:
        """Police vetting covers the day itself; an expired facilitator cannot be booked."""
        return self.vetting_date <= day <= self.vetting_expires_on

    def trained_for(self, level: str) -> bool:
        return TRAINING_RANK[self.training_level] >= TRAINING_RANK[level]


@dataclass(frozen=True)
class Room:
    room_id: str
    name: str
    capacity: int
    waiting_room: bool = False


@dataclass(frozen=True)
class Venue:
    venue_id: str
    county: str
    name: str
    address: str
    lat: float
    lon: float
    kind: str
    neutral: bool
    accessibility: tuple[str, ...]
    rooms: tuple[Room, ...]
    separate_waiting_rooms: bool
    opening: tuple[WeeklyHours, ...]
    cost_per_hour_pence: int = 0
    refreshments: str = ""
    travel_notes: str = ""
    district: str = ""
    active: bool = True
    version: int = 1

    def room(self, room_id: str) -> Room | None:
        return next((r for r in self.rooms if r.room_id == room_id), None)

    @property
    def meeting_rooms(self) -> tuple[Room, ...]:
        return tuple(r for r in self.rooms if not r.waiting_room)


@dataclass(frozen=True)
class MeetingNeeds:
    """What a meeting needs, as the coordinator (and the case's risk assessment) set it."""
    participant_ids: tuple[str, ...] = ()
    supervisee_ids: tuple[str, ...] = ()
    duration_minutes: int = 0
    facilitators_needed: int = 0
    min_training_level: str = "foundation"
    languages: tuple[str, ...] = ()
    accessibility: tuple[str, ...] = ()
    separate_waiting: bool = False
    supporter_present: bool = False
    prison_venue_id: str = ""
    at_home: bool = False
    near_lat: float = 0.0
    near_lon: float = 0.0
    district: str = ""
    attendees: int = 0
    required_accreditations: tuple[str, ...] = ()
    allocated_facilitators: tuple[str, ...] = ()   # the case's facilitators, from the cases service

    def as_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "MeetingNeeds":
        known = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class MeetingRequest:
    request_id: str
    county: str
    case_id: str                # empty for supervision
    kind: str
    earliest: datetime
    latest: datetime
    needs: MeetingNeeds
    status: str = "open"        # open | booked | withdrawn
    meeting_id: str | None = None
    created_at: datetime | None = None
    created_by: str = ""

    @property
    def duration_minutes(self) -> int:
        return self.needs.duration_minutes or DEFAULT_MINUTES[self.kind]

    @property
    def facilitators_needed(self) -> int:
        if self.needs.facilitators_needed:
            return self.needs.facilitators_needed
        if self.kind == "supervision":
            return len(self.needs.supervisee_ids) + 1     # the supervisees and their supervisor
        return DEFAULT_FACILITATORS[self.kind]

    @property
    def attendees(self) -> int:
        if self.needs.attendees:
            return self.needs.attendees
        return len(self.needs.participant_ids) + (1 if self.needs.supporter_present else 0)

    @property
    def pinned_facilitators(self) -> tuple[str, ...]:
        """Facilitators the booking must include: supervisees, or the case's allocated facilitators
        (as many as the meeting takes), since the people who prepared a case run its meetings."""
        if self.kind == "supervision":
            return self.needs.supervisee_ids
        return self.needs.allocated_facilitators[:self.facilitators_needed]

    @property
    def persons(self) -> frozenset[str]:
        """Everyone a facilitator's declared conflicts are checked against."""
        return frozenset(self.needs.participant_ids) | ({self.case_id} if self.case_id else frozenset())


@dataclass(frozen=True)
class MeetingChange:
    at: datetime
    by: str
    action: str                 # scheduled | rescheduled | cancelled
    reason: str
    before: dict
    after: dict


@dataclass(frozen=True)
class Meeting:
    meeting_id: str
    county: str
    case_id: str
    request_id: str
    kind: str
    starts_at: datetime
    ends_at: datetime
    venue_id: str
    room_id: str
    participant_ids: tuple[str, ...]
    facilitator_ids: tuple[str, ...]
    plan_measures: tuple[str, ...]
    status: str = "scheduled"
    sequence: int = 0
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None
    history: tuple[MeetingChange, ...] = field(default=(), compare=False)

    def snapshot(self) -> dict:
        """What a history entry keeps of the meeting before and after a change."""
        return {"starts_at": self.starts_at.isoformat(), "ends_at": self.ends_at.isoformat(),
                "venue_id": self.venue_id, "room_id": self.room_id, "facilitator_ids": list(self.facilitator_ids),
                "status": self.status}

    def moved(self, *, starts_at: datetime, ends_at: datetime, venue_id: str, room_id: str,
              facilitator_ids: tuple[str, ...], plan_measures: tuple[str, ...], at: datetime) -> "Meeting":
        return replace(self, starts_at=starts_at, ends_at=ends_at, venue_id=venue_id, room_id=room_id,
                       facilitator_ids=facilitator_ids, plan_measures=plan_measures, sequence=self.sequence + 1,
                       version=self.version + 1, updated_at=at)

    def cancelled(self, at: datetime) -> "Meeting":
        return replace(self, status="cancelled", sequence=self.sequence + 1, version=self.version + 1, updated_at=at)
