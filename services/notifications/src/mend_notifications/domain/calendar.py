"""The calendar file (.ics, RFC 5545 with iTIP methods from RFC 5546) sent with a meeting's
emails, so the meeting lands in the recipient's calendar and moves or disappears with it.

One meeting keeps one UID ("{meeting_id}@mend") for its whole life; the caller bumps SEQUENCE
on every change (a reschedule, and the cancellation itself) so calendars replace the earlier
version rather than adding a second one. Times are written in UTC, which every client reads.

Build one file per recipient and list as attendees only that recipient and staff: an .ics is
part of the message, so the other party's name or email must not be in it unless released
(policy.leaked_details can read the decoded text like any other).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Sequence

from icalendar import Calendar, Event, vCalAddress, vText

PRODID = "-//Mend//Mend notifications//EN"
METHODS = ("REQUEST", "CANCEL")
_EMAIL = re.compile(r"[^@\s:<>\"]+@[^@\s:<>\"]+\.[^@\s:<>\".]+")


def _utc(at: datetime, name: str) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be a datetime with a time zone")
    return at.astimezone(timezone.utc).replace(microsecond=0)


def _param(text: str) -> str:
    # A parameter value (CN) may not hold quotes or control characters (RFC 5545 3.1).
    return " ".join("".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in str(text) if c != '"').split())


def _address(email: str, name: str, field: str) -> vCalAddress:
    if not isinstance(email, str) or not _EMAIL.fullmatch(email.strip()):
        raise ValueError(f"{field}: {email!r} is not an email address")
    address = vCalAddress("mailto:" + email.strip())
    if name and _param(name):
        address.params["CN"] = vText(_param(name))
    return address


def meeting_ics(*, meeting_id: str, sequence: int, starts_at: datetime, ends_at: datetime, summary: str,
                location: str, description: str, organizer_email: str, attendees: Sequence[tuple[str, str]],
                method: str = "REQUEST", organizer_name: str = "", stamp: datetime | None = None) -> bytes:
    """The .ics bytes for one meeting, as a REQUEST (new or changed) or a CANCEL. `stamp` is the
    DTSTAMP (when this version was made; now if not given). Attendees are (name, email)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    if not isinstance(meeting_id, str) or not meeting_id.strip() or any(c.isspace() or c == "@" for c in meeting_id):
        raise ValueError("meeting_id must be non-empty, without spaces or '@'")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
        raise ValueError("sequence is a whole number from 0, raised on every change")
    start, end = _utc(starts_at, "starts_at"), _utc(ends_at, "ends_at")
    if end <= start:
        raise ValueError("ends_at must be after starts_at")
    made = _utc(stamp or datetime.now(timezone.utc), "stamp")

    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)

    event = Event()
    event.add("uid", f"{meeting_id}@mend")
    event.add("dtstamp", made)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("sequence", sequence)
    event.add("summary", summary)
    if location:
        event.add("location", location)
    if description:
        event.add("description", description)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    event.add("organizer", _address(organizer_email, organizer_name, "organizer_email"))
    for i, (name, email) in enumerate(attendees):
        attendee = _address(email, name, f"attendees[{i}]")
        attendee.params["ROLE"] = vText("REQ-PARTICIPANT")
        attendee.params["PARTSTAT"] = vText("NEEDS-ACTION")
        # No replies: the service's mailbox does not process iTIP answers; people call or write.
        attendee.params["RSVP"] = vText("FALSE")
        event.add("attendee", attendee)
    cal.add_component(event)
    return cal.to_ical()
