"""Turning callers' input into records: every field checked, every violation reported at once,
named by field and rule."""
from __future__ import annotations

import math
import uuid
from datetime import date, datetime, time, timedelta, timezone
from typing import Sequence

from mend_common.errors import Violations

from ..domain.records import Absence, Facilitator, MeetingNeeds, Room, Venue, WeeklyHours
from ..domain.vocabulary import (ACCESSIBILITY_FEATURES, FACILITATOR_KINDS, MEETING_KINDS, TRAINING_LEVELS,
                                 VENUE_KINDS, WEEKDAYS)

MAX_LIST = 50
MAX_NAME = 200
MAX_TEXT = 2000
MAX_ROOMS = 40
MAX_HOURS_PER_WEEK = 60.0
MAX_TAG = 64
# How far from today anything is planned or recorded: far enough for any real diary, near enough
# that converting to local time can never run off the calendar.
MAX_DAYS_AHEAD = 2 * 366
MAX_DAYS_BACK = 2 * 366


def plannable(when: datetime) -> bool:
    """Within MAX_DAYS_BACK before and MAX_DAYS_AHEAD after now, and a real instant (aware)."""
    if when.tzinfo is None or when.utcoffset() is None:
        return False
    now = datetime.now(timezone.utc)
    return now - timedelta(days=MAX_DAYS_BACK) <= when <= now + timedelta(days=MAX_DAYS_AHEAD)


def new_id() -> str:
    return str(uuid.uuid4())


def _tags(v: Violations, field: str, raw: Sequence, *, allowed: Sequence[str] | None = None,
          lower: bool = True) -> tuple[str, ...]:
    if not isinstance(raw, (list, tuple)):
        v.add(field, "must be a list")
        return ()
    if len(raw) > MAX_LIST:
        v.add(field, f"must hold at most {MAX_LIST} items")
        return ()
    out = []
    for i, item in enumerate(raw):
        text = v.text(f"{field}[{i}]", item, required=True, limit=MAX_TAG)
        text = text.lower() if lower else text
        if allowed is not None and text and text not in allowed:
            v.add(f"{field}[{i}]", "must be one of " + ", ".join(allowed))
            continue
        if text and text not in out:
            out.append(text)
    return tuple(out)


def _language_tags(v: Violations, field: str, raw: Sequence) -> tuple[str, ...]:
    tags = _tags(v, field, raw)
    for i, tag in enumerate(tags):
        if not (2 <= len(tag) <= 8 and tag.isascii() and tag.isalpha()):
            v.add(f"{field}[{i}]", "must be a language tag such as en or cy")
    return tags


def _ids(v: Violations, field: str, raw: Sequence) -> tuple[str, ...]:
    if not isinstance(raw, (list, tuple)) or len(raw) > MAX_LIST:
        v.add(field, f"must be a list of at most {MAX_LIST} ids")
        return ()
    out = [x for x in (v.uuid(f"{field}[{i}]", x) for i, x in enumerate(raw)) if x]
    # The same id twice (however written), not two different bad ones.
    if len(set(out)) != len(out) or len(set(map(str, raw))) != len(raw):
        v.add(field, "must not name anyone twice")
    return tuple(out)


def _clock(v: Violations, field: str, raw) -> time | None:
    try:
        text = raw if isinstance(raw, str) else ""
        if len(text) != 5 or text[2] != ":":
            raise ValueError
        return time(int(text[:2]), int(text[3:]))
    except ValueError:
        v.add(field, "must be a time of day HH:MM (00:00-23:59)")
        return None


def weekly_hours(v: Violations, field: str, raw: Sequence[dict]) -> tuple[WeeklyHours, ...]:
    if not isinstance(raw, (list, tuple)) or len(raw) > 7 * 6:
        v.add(field, "must be a list of at most 42 weekly times")
        return ()
    out = []
    for i, h in enumerate(raw):
        if not isinstance(h, dict):
            v.add(f"{field}[{i}]", "must be a weekday with start and end")
            continue
        weekday = str(h.get("weekday", "")).lower()
        if weekday not in WEEKDAYS:
            v.add(f"{field}[{i}].weekday", "must be one of " + ", ".join(WEEKDAYS))
        start, end = _clock(v, f"{field}[{i}].start", h.get("start")), _clock(v, f"{field}[{i}].end", h.get("end"))
        if start and end and end <= start:
            v.add(f"{field}[{i}].end", "must be after start (the same day)")
        elif start and end and weekday in WEEKDAYS:
            out.append(WeeklyHours(weekday, start, end))
    for i, a in enumerate(out):
        for b in out[i + 1:]:
            if a.weekday == b.weekday and a.start < b.end and b.start < a.end:
                v.add(field, f"times on {a.weekday} overlap: give each span once")
    return tuple(sorted(out, key=lambda h: (h.weekday_index, h.start)))


def _day(v: Violations, field: str, raw) -> date | None:
    if isinstance(raw, str) and len(raw) == 10:
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    v.add(field, "must be a date YYYY-MM-DD")
    return None


def _coordinate(v: Violations, field: str, raw, limit: float) -> float:
    if not isinstance(raw, (int, float)) or isinstance(raw, bool) or not math.isfinite(raw) or abs(raw) > limit:
        v.add(field, f"must be a number from -{limit:g} to {limit:g}")
        return 0.0
    return float(raw)


def facilitator(v: Violations, data: dict, *, facilitator_id: str, county: str, version: int) -> Facilitator | None:
    name = v.text("name", data.get("name"), required=True, limit=MAX_NAME)
    email = v.text("email", data.get("email"), required=True, limit=320)
    if email and ("@" not in email or " " in email or email.startswith("@") or email.endswith("@")):
        v.add("email", "must be an email address")
    kind = data.get("kind", "")
    if kind not in FACILITATOR_KINDS:
        v.add("kind", "must be one of " + ", ".join(FACILITATOR_KINDS))
    level = data.get("training_level", "")
    if level not in TRAINING_LEVELS:
        v.add("training_level", "must be one of " + ", ".join(TRAINING_LEVELS))
    hours = data.get("max_hours_per_week", 0)
    if not isinstance(hours, (int, float)) or isinstance(hours, bool) or not math.isfinite(hours) or not 0.5 <= hours <= MAX_HOURS_PER_WEEK:
        v.add("max_hours_per_week", f"must be from 0.5 to {MAX_HOURS_PER_WEEK:g} hours")
        hours = 0
    vetted = _day(v, "vetting_date", data.get("vetting_date"))
    expires = _day(v, "vetting_expires_on", data.get("vetting_expires_on"))
    if vetted and expires:
        if expires <= vetted:
            v.add("vetting_expires_on", "must be after vetting_date")
        elif (expires - vetted).days > 366:
            v.add("vetting_expires_on", "police vetting is renewed every 12 months: at most a year after vetting_date")
    availability = weekly_hours(v, "availability", data.get("availability", []))
    languages = _language_tags(v, "languages", data.get("languages", [])) or ("en",)
    absences = []
    raw_absences = data.get("absences", [])
    if not isinstance(raw_absences, (list, tuple)) or len(raw_absences) > 200:
        v.add("absences", "must be a list of at most 200 absences")
        raw_absences = []
    for i, a in enumerate(raw_absences):
        if not isinstance(a, dict):
            v.add(f"absences[{i}]", "must be an absence with starts_at and ends_at")
            continue
        start, end = a.get("starts_at"), a.get("ends_at")
        if not isinstance(start, datetime) or not isinstance(end, datetime):
            v.add(f"absences[{i}]", "needs starts_at and ends_at")
        elif not plannable(start) or not plannable(end):
            v.add(f"absences[{i}]", f"must be within {MAX_DAYS_BACK} days before and {MAX_DAYS_AHEAD} after today")
        elif end <= start:
            v.add(f"absences[{i}].ends_at", "must be after starts_at")
        else:
            absences.append(Absence(start, end, v.text(f"absences[{i}].reason", a.get("reason", ""), required=False,
                                                       limit=MAX_NAME)))
    record = Facilitator(
        facilitator_id=facilitator_id, county=county, name=name, email=email, kind=kind,
        home_lat=_coordinate(v, "home_lat", data.get("home_lat", 0.0), 90),
        home_lon=_coordinate(v, "home_lon", data.get("home_lon", 0.0), 180),
        districts=_tags(v, "districts", data.get("districts", [])), availability=availability,
        max_minutes_per_week=int(round(hours * 60)), vetting_date=vetted or date.min,
        vetting_expires_on=expires or date.min, training_level=level,
        accreditations=_tags(v, "accreditations", data.get("accreditations", [])), languages=languages,
        conflicts=_tags(v, "conflicts", data.get("conflicts", []), lower=False), absences=tuple(absences),
        active=bool(data.get("active", True)), version=version)
    return None if v else record


def venue(v: Violations, data: dict, *, venue_id: str, county: str, version: int,
          existing_rooms: Sequence[Room] = ()) -> Venue | None:
    name = v.text("name", data.get("name"), required=True, limit=MAX_NAME)
    address = v.text("address", data.get("address"), required=True, limit=MAX_TEXT)
    kind = data.get("kind", "")
    if kind not in VENUE_KINDS or kind == "participants_home":
        v.add("kind", "must be one of " + ", ".join(k for k in VENUE_KINDS if k != "participants_home")
              + " (home visits need no venue)")
    raw_rooms = data.get("rooms", [])
    if not isinstance(raw_rooms, (list, tuple)) or not raw_rooms or len(raw_rooms) > MAX_ROOMS:
        v.add("rooms", f"must list 1-{MAX_ROOMS} rooms")
        raw_rooms = []
    known = {r.room_id for r in existing_rooms}
    room_list = []
    for i, r in enumerate(raw_rooms):
        if not isinstance(r, dict):
            v.add(f"rooms[{i}]", "must be a room with a name and capacity")
            continue
        room_id = r.get("room_id") or ""
        if room_id and room_id not in known:
            v.add(f"rooms[{i}].room_id", "must be a room of this venue, or empty for a new room")
        capacity = r.get("capacity", 0)
        if not isinstance(capacity, int) or isinstance(capacity, bool) or not 1 <= capacity <= 500:
            v.add(f"rooms[{i}].capacity", "must be 1-500 people")
        room_list.append(Room(room_id or new_id(), v.text(f"rooms[{i}].name", r.get("name"), required=True,
                                                          limit=MAX_NAME), capacity if isinstance(capacity, int) else 0,
                              bool(r.get("waiting_room", False))))
    if raw_rooms and not any(not r.waiting_room for r in room_list):
        v.add("rooms", "must include at least one room for meetings (not only waiting rooms)")
    separate = bool(data.get("separate_waiting_rooms", False))
    if separate and sum(1 for r in room_list if r.waiting_room) < 2:
        v.add("separate_waiting_rooms", "needs two rooms marked waiting_room, one for each party")
    cost = data.get("cost_per_hour_pence", 0)
    if not isinstance(cost, int) or isinstance(cost, bool) or not 0 <= cost <= 1_000_000:
        v.add("cost_per_hour_pence", "must be 0-1000000 pence")
    record = Venue(
        venue_id=venue_id, county=county, name=name, address=address,
        lat=_coordinate(v, "lat", data.get("lat", 0.0), 90), lon=_coordinate(v, "lon", data.get("lon", 0.0), 180),
        kind=kind, neutral=bool(data.get("neutral", False)) and kind not in ("prison", "police_station"),
        accessibility=_tags(v, "accessibility", data.get("accessibility", []), allowed=ACCESSIBILITY_FEATURES),
        rooms=tuple(room_list), separate_waiting_rooms=separate,
        opening=weekly_hours(v, "opening", data.get("opening", [])),
        cost_per_hour_pence=cost if isinstance(cost, int) else 0,
        refreshments=v.text("refreshments", data.get("refreshments", ""), required=False, limit=MAX_TEXT),
        travel_notes=v.text("travel_notes", data.get("travel_notes", ""), required=False, limit=MAX_TEXT),
        district=v.text("district", data.get("district", ""), required=False, limit=MAX_TAG).lower(),
        active=bool(data.get("active", True)), version=version)
    if not record.opening:
        v.add("opening", "must give the venue's opening hours")
    return None if v else record


def meeting_needs(v: Violations, data: dict, kind: str) -> MeetingNeeds:
    participants = _ids(v, "participant_ids", data.get("participant_ids", []))
    supervisees = _ids(v, "supervisee_ids", data.get("supervisee_ids", []))
    if kind == "supervision":
        if participants:
            v.add("participant_ids", "must be empty for supervision: it is for facilitators")
        if not supervisees:
            v.add("supervisee_ids", "must name the facilitators being supervised")
    elif kind in MEETING_KINDS:
        if not participants:
            v.add("participant_ids", "must name at least one participant of the case")
        if supervisees:
            v.add("supervisee_ids", "is only for supervision")
    duration = data.get("duration_minutes", 0)
    if not isinstance(duration, int) or isinstance(duration, bool) or not (duration == 0 or 30 <= duration <= 480):
        v.add("duration_minutes", "must be 0 (the usual length) or 30-480 minutes")
        duration = 0
    elif duration % 30:
        v.add("duration_minutes", "must be a multiple of 30 minutes")
    needed = data.get("facilitators_needed", 0)
    if not isinstance(needed, int) or isinstance(needed, bool) or not 0 <= needed <= 4:
        v.add("facilitators_needed", "must be 0 (the usual number) to 4")
        needed = 0
    elif kind == "conference" and needed == 1:
        v.add("facilitators_needed", "a conference is always co-facilitated: at least 2")
    level = data.get("min_training_level") or "foundation"
    if level not in TRAINING_LEVELS:
        v.add("min_training_level", "must be one of " + ", ".join(TRAINING_LEVELS))
    attendees = data.get("attendees", 0)
    if not isinstance(attendees, int) or isinstance(attendees, bool) or not 0 <= attendees <= 100:
        v.add("attendees", "must be 0 (count the participants) to 100")
        attendees = 0
    at_home = bool(data.get("at_home", False))
    if at_home and kind != "preparation_visit":
        v.add("at_home", "only a preparation visit happens at the participant's home")
    near_lat = _coordinate(v, "near_lat", data.get("near_lat", 0.0), 90)
    near_lon = _coordinate(v, "near_lon", data.get("near_lon", 0.0), 180)
    if at_home and not (near_lat or near_lon):
        v.add("near_lat", "a home visit needs where the participant lives (near_lat, near_lon)")
    prison = data.get("prison_venue_id") or ""
    if prison:
        prison = v.uuid("prison_venue_id", prison)
    elif kind == "pre_prison_visit":
        v.add("prison_venue_id", "a pre-prison visit must name the prison")
    return MeetingNeeds(
        participant_ids=participants, supervisee_ids=supervisees, duration_minutes=duration,
        facilitators_needed=needed, min_training_level=level,
        languages=_language_tags(v, "languages", data.get("languages", [])),
        accessibility=_tags(v, "accessibility", data.get("accessibility", []), allowed=ACCESSIBILITY_FEATURES),
        separate_waiting=bool(data.get("separate_waiting", False)),
        supporter_present=bool(data.get("supporter_present", False)), prison_venue_id=prison, at_home=at_home,
        near_lat=near_lat, near_lon=near_lon,
        district=v.text("district", data.get("district", ""), required=False, limit=MAX_TAG).lower(),
        attendees=attendees,
        required_accreditations=_tags(v, "required_accreditations", data.get("required_accreditations", [])))
