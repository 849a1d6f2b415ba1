"""Scheduling records in SQL. Bookings take row locks on the facilitators and the room they use
before checking for overlaps, so two coordinators booking the same person at the same moment
are serialised and the second sees the first's meeting."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from typing import Iterable, Sequence

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Connection

from mend_common.errors import ConcurrentChange

from ..domain.records import (Absence, Facilitator, Meeting, MeetingChange, MeetingNeeds, MeetingRequest, Room, Venue,
                              WeeklyHours)
from .tables import (allocation_proposals, facilitators, meeting_facilitators, meeting_history, meeting_requests,
                     meetings, rooms, venues)


def _aware(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _utc(ts: datetime) -> datetime:
    # Stored in UTC: SQLite would drop any other offset and shift the time.
    return ts.astimezone(timezone.utc)


def _facilitator(row) -> Facilitator:
    return Facilitator(
        facilitator_id=row.facilitator_id, county=row.county, name=row.name, email=row.email, kind=row.kind,
        home_lat=row.home_lat, home_lon=row.home_lon, districts=tuple(json.loads(row.districts)),
        availability=tuple(WeeklyHours.from_dict(d) for d in json.loads(row.availability)),
        max_minutes_per_week=row.max_minutes_per_week, vetting_date=row.vetting_date,
        vetting_expires_on=row.vetting_expires_on, training_level=row.training_level,
        accreditations=tuple(json.loads(row.accreditations)), languages=tuple(json.loads(row.languages)),
        conflicts=tuple(json.loads(row.conflicts)),
        absences=tuple(Absence.from_dict(d) for d in json.loads(row.absences)), active=bool(row.active),
        version=row.version)


def _facilitator_row(f: Facilitator, at: datetime, by: str) -> dict:
    return {
        "facilitator_id": f.facilitator_id, "county": f.county, "name": f.name, "email": f.email, "kind": f.kind,
        "home_lat": f.home_lat, "home_lon": f.home_lon, "districts": json.dumps(list(f.districts)),
        "availability": json.dumps([h.as_dict() for h in f.availability]),
        "max_minutes_per_week": f.max_minutes_per_week, "vetting_date": f.vetting_date,
        "vetting_expires_on": f.vetting_expires_on, "training_level": f.training_level,
        "accreditations": json.dumps(list(f.accreditations)), "languages": json.dumps(list(f.languages)),
        "conflicts": json.dumps(list(f.conflicts)), "absences": json.dumps([a.as_dict() for a in f.absences]),
        "active": f.active, "version": f.version, "updated_at": at, "updated_by": by}


def _venue(row, room_rows) -> Venue:
    return Venue(
        venue_id=row.venue_id, county=row.county, name=row.name, address=row.address, lat=row.lat, lon=row.lon,
        kind=row.kind, neutral=bool(row.neutral), accessibility=tuple(json.loads(row.accessibility)),
        rooms=tuple(Room(r.room_id, r.name, r.capacity, bool(r.waiting_room)) for r in room_rows),
        separate_waiting_rooms=bool(row.separate_waiting_rooms),
        opening=tuple(WeeklyHours.from_dict(d) for d in json.loads(row.opening)),
        cost_per_hour_pence=row.cost_per_hour_pence, refreshments=row.refreshments, travel_notes=row.travel_notes,
        district=row.district, active=bool(row.active), version=row.version)


def _request(row) -> MeetingRequest:
    return MeetingRequest(
        request_id=row.request_id, county=row.county, case_id=row.case_id, kind=row.kind,
        earliest=_aware(row.earliest), latest=_aware(row.latest), needs=MeetingNeeds.from_dict(json.loads(row.needs)),
        status=row.status, meeting_id=row.meeting_id, created_at=_aware(row.created_at), created_by=row.created_by)


def _meeting(row, history=()) -> Meeting:
    return Meeting(
        meeting_id=row.meeting_id, county=row.county, case_id=row.case_id, request_id=row.request_id, kind=row.kind,
        starts_at=_aware(row.starts_at), ends_at=_aware(row.ends_at), venue_id=row.venue_id, room_id=row.room_id,
        participant_ids=tuple(json.loads(row.participant_ids)), facilitator_ids=tuple(json.loads(row.facilitator_ids)),
        plan_measures=tuple(json.loads(row.plan_measures)), status=row.status, sequence=row.sequence,
        version=row.version, created_at=_aware(row.created_at), updated_at=_aware(row.updated_at),
        history=tuple(MeetingChange(_aware(h.at), h.by, h.action, h.reason, json.loads(h.before), json.loads(h.after))
                      for h in history))


def _meeting_row(m: Meeting) -> dict:
    return {
        "meeting_id": m.meeting_id, "county": m.county, "case_id": m.case_id, "request_id": m.request_id,
        "kind": m.kind, "starts_at": _utc(m.starts_at), "ends_at": _utc(m.ends_at), "venue_id": m.venue_id,
        "room_id": m.room_id, "participant_ids": json.dumps(list(m.participant_ids)),
        "facilitator_ids": json.dumps(list(m.facilitator_ids)), "plan_measures": json.dumps(list(m.plan_measures)),
        "status": m.status, "sequence": m.sequence, "version": m.version, "created_at": m.created_at,
        "updated_at": m.updated_at}


class SqlSchedulingRepository:
    def __init__(self, conn: Connection):
        self.conn = conn

    # -- facilitators ----------------------------------------------------------------------
    def facilitator(self, facilitator_id: str) -> Facilitator | None:
        row = self.conn.execute(select(facilitators).where(facilitators.c.facilitator_id == facilitator_id)).first()
        return _facilitator(row) if row else None

    def facilitators(self, county: str, *, include_inactive: bool = False,
                     ids: Sequence[str] | None = None, lock: bool = False) -> list[Facilitator]:
        query = select(facilitators).where(facilitators.c.county == county)
        if not include_inactive:
            query = query.where(facilitators.c.active.is_(True))
        if ids is not None:
            query = query.where(facilitators.c.facilitator_id.in_(list(ids)))
        if lock:
            # Sorted so two bookings locking the same people never deadlock.
            query = query.order_by(facilitators.c.facilitator_id).with_for_update()
        else:
            query = query.order_by(facilitators.c.name, facilitators.c.facilitator_id)
        return [_facilitator(r) for r in self.conn.execute(query)]

    def save_facilitator(self, f: Facilitator, at: datetime, by: str) -> None:
        row = _facilitator_row(f, at, by)
        if f.version == 1:
            self.conn.execute(insert(facilitators).values(**row))
            return
        done = self.conn.execute(update(facilitators).where(and_(
            facilitators.c.facilitator_id == f.facilitator_id, facilitators.c.version == f.version - 1)).values(**row))
        if done.rowcount != 1:
            raise ConcurrentChange(f"facilitator {f.facilitator_id} was changed by someone else: read it again")

    # -- venues ----------------------------------------------------------------------------
    def venue(self, venue_id: str) -> Venue | None:
        row = self.conn.execute(select(venues).where(venues.c.venue_id == venue_id)).first()
        if row is None:
            return None
        return _venue(row, self.conn.execute(select(rooms).where(
            and_(rooms.c.venue_id == venue_id, rooms.c.active.is_(True))).order_by(rooms.c.name, rooms.c.room_id)))

    def venues(self, county: str, *, include_inactive: bool = False) -> list[Venue]:
        query = select(venues).where(venues.c.county == county)
        if not include_inactive:
            query = query.where(venues.c.active.is_(True))
        rows = list(self.conn.execute(query.order_by(venues.c.name, venues.c.venue_id)))
        by_venue: dict[str, list] = {}
        if rows:
            for r in self.conn.execute(select(rooms).where(and_(rooms.c.county == county, rooms.c.active.is_(True)))
                                       .order_by(rooms.c.name, rooms.c.room_id)):
                by_venue.setdefault(r.venue_id, []).append(r)
        return [_venue(r, by_venue.get(r.venue_id, [])) for r in rows]

    def lock_room(self, room_id: str) -> bool:
        return self.conn.execute(select(rooms.c.room_id).where(rooms.c.room_id == room_id).with_for_update()).first() \
            is not None

    def save_venue(self, v: Venue, at: datetime, by: str) -> None:
        row = {"venue_id": v.venue_id, "county": v.county, "name": v.name, "address": v.address, "lat": v.lat,
               "lon": v.lon, "kind": v.kind, "neutral": v.neutral, "accessibility": json.dumps(list(v.accessibility)),
               "separate_waiting_rooms": v.separate_waiting_rooms,
               "opening": json.dumps([h.as_dict() for h in v.opening]), "cost_per_hour_pence": v.cost_per_hour_pence,
               "refreshments": v.refreshments, "travel_notes": v.travel_notes, "district": v.district,
               "active": v.active, "version": v.version, "updated_at": at, "updated_by": by}
        if v.version == 1:
            self.conn.execute(insert(venues).values(**row))
        else:
            done = self.conn.execute(update(venues).where(and_(
                venues.c.venue_id == v.venue_id, venues.c.version == v.version - 1)).values(**row))
            if done.rowcount != 1:
                raise ConcurrentChange(f"venue {v.venue_id} was changed by someone else: read it again")
        # Rooms are kept, never deleted: past meetings still name them. One no longer listed is retired.
        existing = {r.room_id for r in self.conn.execute(select(rooms.c.room_id).where(rooms.c.venue_id == v.venue_id))}
        listed = {r.room_id for r in v.rooms}
        if existing - listed:
            self.conn.execute(update(rooms).where(rooms.c.room_id.in_(list(existing - listed))).values(active=False))
        for r in v.rooms:
            values = {"name": r.name, "capacity": r.capacity, "waiting_room": r.waiting_room, "active": True}
            if r.room_id in existing:
                self.conn.execute(update(rooms).where(rooms.c.room_id == r.room_id).values(**values))
            else:
                self.conn.execute(insert(rooms).values(room_id=r.room_id, venue_id=v.venue_id, county=v.county,
                                                       **values))

    def room_owner(self, room_id: str) -> str | None:
        return self.conn.execute(select(rooms.c.venue_id).where(rooms.c.room_id == room_id)).scalar()

    # -- meeting requests ------------------------------------------------------------------
    def request(self, request_id: str, *, lock: bool = False) -> MeetingRequest | None:
        query = select(meeting_requests).where(meeting_requests.c.request_id == request_id)
        row = self.conn.execute(query.with_for_update() if lock else query).first()
        return _request(row) if row else None

    def requests(self, county: str, *, status: str | None = None, ids: Sequence[str] | None = None,
                 case_id: str | None = None) -> list[MeetingRequest]:
        query = select(meeting_requests).where(meeting_requests.c.county == county)
        if status:
            query = query.where(meeting_requests.c.status == status)
        if ids is not None:
            query = query.where(meeting_requests.c.request_id.in_(list(ids)))
        if case_id is not None:
            query = query.where(meeting_requests.c.case_id == case_id)
        return [_request(r) for r in self.conn.execute(query.order_by(meeting_requests.c.latest,
                                                                      meeting_requests.c.request_id))]

    def add_request(self, r: MeetingRequest) -> None:
        self.conn.execute(insert(meeting_requests).values(
            request_id=r.request_id, county=r.county, case_id=r.case_id, kind=r.kind, earliest=_utc(r.earliest),
            latest=_utc(r.latest), needs=json.dumps(r.needs.as_dict()), status=r.status, meeting_id=r.meeting_id,
            created_at=r.created_at, created_by=r.created_by))

    def set_request_status(self, request_id: str, status: str, *, meeting_id: str | None = None,
                           reason: str | None = None) -> None:
        values = {"status": status, "meeting_id": meeting_id}
        if reason is not None:
            values["withdrawn_reason"] = reason
        self.conn.execute(update(meeting_requests).where(meeting_requests.c.request_id == request_id).values(**values))

    # -- meetings --------------------------------------------------------------------------
    def meeting(self, meeting_id: str, *, lock: bool = False) -> Meeting | None:
        query = select(meetings).where(meetings.c.meeting_id == meeting_id)
        row = self.conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            return None
        history = self.conn.execute(select(meeting_history).where(meeting_history.c.meeting_id == meeting_id)
                                    .order_by(meeting_history.c.id))
        return _meeting(row, history)

    def meetings(self, county: str, *, case_id: str | None = None, facilitator_id: str | None = None,
                 starts_from: datetime | None = None, starts_before: datetime | None = None,
                 include_cancelled: bool = False, limit: int = 1000) -> list[Meeting]:
        query = select(meetings).where(meetings.c.county == county)
        if case_id:
            query = query.where(meetings.c.case_id == case_id)
        if facilitator_id:
            query = query.where(meetings.c.meeting_id.in_(select(meeting_facilitators.c.meeting_id).where(
                meeting_facilitators.c.facilitator_id == facilitator_id)))
        if starts_from is not None:
            query = query.where(meetings.c.ends_at > _utc(starts_from))
        if starts_before is not None:
            query = query.where(meetings.c.starts_at < _utc(starts_before))
        if not include_cancelled:
            query = query.where(meetings.c.status == "scheduled")
        return [_meeting(r) for r in self.conn.execute(
            query.order_by(meetings.c.starts_at, meetings.c.meeting_id).limit(limit))]

    def clashes(self, facilitator_ids: Iterable[str], room_id: str, starts_at: datetime, ends_at: datetime,
                exclude_meeting: str | None = None) -> list[tuple[str, str]]:
        """(what, meeting_id) for every live meeting that overlaps [starts_at, ends_at) and shares a
        facilitator or the room."""
        start, end = _utc(starts_at), _utc(ends_at)
        found = []
        ids = list(facilitator_ids)
        if ids:
            query = select(meeting_facilitators.c.facilitator_id, meeting_facilitators.c.meeting_id).join(
                meetings, meetings.c.meeting_id == meeting_facilitators.c.meeting_id).where(and_(
                    meeting_facilitators.c.facilitator_id.in_(ids), meeting_facilitators.c.starts_at < end,
                    meeting_facilitators.c.ends_at > start, meetings.c.status == "scheduled"))
            if exclude_meeting:
                query = query.where(meeting_facilitators.c.meeting_id != exclude_meeting)
            found += [(f"facilitator {r.facilitator_id}", r.meeting_id) for r in self.conn.execute(query)]
        if room_id:
            query = select(meetings.c.meeting_id).where(and_(
                meetings.c.room_id == room_id, meetings.c.status == "scheduled", meetings.c.starts_at < end,
                meetings.c.ends_at > start))
            if exclude_meeting:
                query = query.where(meetings.c.meeting_id != exclude_meeting)
            found += [(f"room {room_id}", r.meeting_id) for r in self.conn.execute(query)]
        return found

    def _write_facilitators(self, m: Meeting) -> None:
        self.conn.execute(delete(meeting_facilitators).where(meeting_facilitators.c.meeting_id == m.meeting_id))
        # Kept for cancelled meetings too (a facilitator's feed shows them cancelled); the clash
        # check and the load count join the meeting's status.
        if m.facilitator_ids:
            self.conn.execute(insert(meeting_facilitators), [
                {"meeting_id": m.meeting_id, "facilitator_id": f, "starts_at": _utc(m.starts_at),
                 "ends_at": _utc(m.ends_at)} for f in m.facilitator_ids])

    def _history(self, m: Meeting, at: datetime, by: str, action: str, reason: str, before: dict) -> None:
        self.conn.execute(insert(meeting_history).values(
            meeting_id=m.meeting_id, at=at, by=by, action=action, reason=reason, before=json.dumps(before),
            after=json.dumps(m.snapshot())))

    def add_meeting(self, m: Meeting, by: str, reason: str) -> None:
        self.conn.execute(insert(meetings).values(**_meeting_row(m)))
        self._write_facilitators(m)
        self._history(m, m.created_at, by, "scheduled", reason, {})

    def update_meeting(self, m: Meeting, before: Meeting, action: str, by: str, reason: str) -> None:
        done = self.conn.execute(update(meetings).where(and_(
            meetings.c.meeting_id == m.meeting_id, meetings.c.version == before.version)).values(**_meeting_row(m)))
        if done.rowcount != 1:
            raise ConcurrentChange(f"meeting {m.meeting_id} was changed by someone else: read it again")
        self._write_facilitators(m)
        self._history(m, m.updated_at, by, action, reason, before.snapshot())

    def load_minutes(self, facilitator_ids: Sequence[str], starts_from: datetime, starts_before: datetime) -> dict:
        """Booked minutes per facilitator between two instants."""
        totals = {f: 0 for f in facilitator_ids}
        if not facilitator_ids:
            return totals
        for r in self.conn.execute(select(meeting_facilitators).join(
                meetings, meetings.c.meeting_id == meeting_facilitators.c.meeting_id).where(and_(
                meetings.c.status == "scheduled", meeting_facilitators.c.facilitator_id.in_(list(facilitator_ids)),
                meeting_facilitators.c.starts_at >= _utc(starts_from),
                meeting_facilitators.c.starts_at < _utc(starts_before)))):
            totals[r.facilitator_id] += int((_aware(r.ends_at) - _aware(r.starts_at)).total_seconds() // 60)
        return totals

    def live_meetings_with(self, case_id: str, participant_id: str | None = None,
                           after: datetime | None = None) -> list[Meeting]:
        query = select(meetings).where(and_(meetings.c.case_id == case_id, meetings.c.status == "scheduled"))
        if after is not None:
            query = query.where(meetings.c.starts_at > _utc(after))
        found = [_meeting(r) for r in self.conn.execute(query.order_by(meetings.c.starts_at))]
        return [m for m in found if participant_id is None or participant_id in m.participant_ids]

    def open_requests_of_case(self, case_id: str) -> list[MeetingRequest]:
        return [_request(r) for r in self.conn.execute(select(meeting_requests).where(and_(
            meeting_requests.c.case_id == case_id, meeting_requests.c.status == "open")))]

    # -- proposals -------------------------------------------------------------------------
    def add_proposal(self, *, proposal_id: str, county: str, horizon_start: date, weeks: int, placements: list,
                     not_placed: list, report: dict, at: datetime, by: str) -> None:
        self.conn.execute(insert(allocation_proposals).values(
            proposal_id=proposal_id, county=county, status="proposed", horizon_start=horizon_start, weeks=weeks,
            placements=json.dumps(placements), not_placed=json.dumps(not_placed), report=json.dumps(report),
            created_at=at, created_by=by))

    def proposal(self, proposal_id: str, *, lock: bool = False) -> dict | None:
        query = select(allocation_proposals).where(allocation_proposals.c.proposal_id == proposal_id)
        row = self.conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            return None
        return {"proposal_id": row.proposal_id, "county": row.county, "status": row.status,
                "horizon_start": row.horizon_start, "weeks": row.weeks, "placements": json.loads(row.placements),
                "not_placed": json.loads(row.not_placed), "report": json.loads(row.report),
                "created_at": _aware(row.created_at), "created_by": row.created_by}

    def mark_proposal_accepted(self, proposal_id: str, at: datetime, by: str) -> None:
        self.conn.execute(update(allocation_proposals).where(allocation_proposals.c.proposal_id == proposal_id)
                          .values(status="accepted", accepted_at=at, accepted_by=by))
