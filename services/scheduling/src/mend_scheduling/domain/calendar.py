"""Calendars (RFC 5545): a facilitator's subscription feed and one meeting's invitation.

One meeting keeps one UID ("{meeting_id}@mend", the same UID the notifications service puts in
its emails) and its SEQUENCE rises on every change, so a client replaces the event rather than
adding a second. Both are published (METHOD:PUBLISH) and lists cancelled meetings as CANCELLED
for a while, so a subscribed calendar drops them instead of keeping a stale copy.

Participants are never named: a calendar is read on phones and shared screens, and names of
victims and offenders do not belong there. Facilitators see the case id and the venue.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Mapping, Sequence

from icalendar import Calendar, Event, vCalAddress, vText

from .records import Meeting, Venue

PRODID = "-//Mend//Mend scheduling//EN"
KIND_LABELS = {
    "preparation_visit": "Preparation visit",
    "pre_prison_visit": "Pre-prison visit",
    "conference": "Restorative conference",
    "indirect_session": "Indirect communication session",
    "supervision": "Supervision",
}


def _utc(at: datetime) -> datetime:
    return at.astimezone(timezone.utc).replace(microsecond=0)


def _where(meeting: Meeting, venue: Venue | None) -> str:
    if not meeting.venue_id:
        return "Participant's home (address in the case file)"
    if venue is None:
        return ""
    room = venue.room(meeting.room_id)
    return ", ".join(x for x in (venue.name, room.name if room else "", venue.address) if x)


def _event(meeting: Meeting, venue: Venue | None, stamp: datetime, organizer_email: str) -> Event:
    event = Event()
    event.add("uid", f"{meeting.meeting_id}@mend")
    event.add("dtstamp", _utc(stamp))
    event.add("dtstart", _utc(meeting.starts_at))
    event.add("dtend", _utc(meeting.ends_at))
    event.add("sequence", meeting.sequence)
    label = KIND_LABELS.get(meeting.kind, meeting.kind)
    event.add("summary", f"{label} (case {meeting.case_id[:8]})" if meeting.case_id else label)
    where = _where(meeting, venue)
    if where:
        event.add("location", where)
    notes = []
    if venue is not None and venue.travel_notes:
        notes.append(f"Travel: {venue.travel_notes}")
    if venue is not None and venue.refreshments:
        notes.append(f"Refreshments: {venue.refreshments}")
    if meeting.plan_measures:
        notes.append("Safety measures: " + ", ".join(m.replace("_", " ") for m in meeting.plan_measures))
    notes.append(f"{len(meeting.facilitator_ids)} facilitator(s); details in Mend.")
    event.add("description", "\n".join(notes))
    event.add("status", "CANCELLED" if meeting.status == "cancelled" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    event.add("class", "CONFIDENTIAL")
    organizer = vCalAddress(f"mailto:{organizer_email}")
    organizer.params["CN"] = vText("Mend restorative justice service")
    event.add("organizer", organizer)
    return event


def _calendar(method: str, name: str | None = None) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)
    if name:
        cal.add("x-wr-calname", name)
        # Clients that honour it poll every hour rather than once a day.
        cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
        cal.add("x-published-ttl", timedelta(hours=1))
    return cal


def facilitator_feed(facilitator_name: str, meetings: Sequence[Meeting], venues: Mapping[str, Venue],
                     *, organizer_email: str, stamp: datetime | None = None) -> bytes:
    """A facilitator's subscription feed: their meetings, cancelled ones marked CANCELLED."""
    made = stamp or datetime.now(timezone.utc)
    cal = _calendar("PUBLISH", f"Mend: {facilitator_name}")
    for m in sorted(meetings, key=lambda m: (m.starts_at, m.meeting_id)):
        cal.add_component(_event(m, venues.get(m.venue_id), made, organizer_email))
    return cal.to_ical()


def meeting_invitation(meeting: Meeting, venue: Venue | None, *, organizer_email: str,
                       stamp: datetime | None = None) -> bytes:
    """One meeting as an .ics file to save into a calendar (PUBLISH: nobody is asked to reply;
    the notifications service sends the invitations people answer)."""
    cal = _calendar("PUBLISH")
    cal.add_component(_event(meeting, venue, stamp or datetime.now(timezone.utc), organizer_email))
    return cal.to_ical()
