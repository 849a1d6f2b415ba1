"""Meeting calendar files: valid RFC 5545, read back with icalendar, one stable UID per meeting,
SEQUENCE raised on change, CANCEL marks it cancelled."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from icalendar import Calendar

from notification_examples import london, utc
from mend_notifications.domain.calendar import PRODID, meeting_ics

STAMP = utc(2026, 6, 1, 12, 0)


def ics(**kw) -> bytes:
    args = dict(meeting_id="6f1c2a7e-0b7d-4c1e-9a55-2f3b9d1e8c01", sequence=0, starts_at=london(2026, 6, 16, 10, 0),
                ends_at=london(2026, 6, 16, 11, 30), summary="Restorative meeting",
                location="Penrith Community Centre, Middlegate, Penrith CA11 7PT",
                description="Please come to the side entrance at 09:45.\nReference: CUM-2026-0142",
                organizer_email="rj@cumbria.example.org", organizer_name="Cumbria RJ Service",
                attendees=[("Sam Taylor", "sam@example.org"), ("Alex Jones", "alex.jones@cumbria.example.org")],
                stamp=STAMP)
    args.update(kw)
    return meeting_ics(**args)


def event_of(data: bytes):
    cal = Calendar.from_ical(data)
    events = list(cal.walk("VEVENT"))
    assert len(events) == 1
    return cal, events[0]


def test_a_request_reads_back_with_everything_a_calendar_needs():
    data = ics()
    cal, ev = event_of(data)
    assert str(cal["VERSION"]) == "2.0" and str(cal["PRODID"]) == PRODID and str(cal["METHOD"]) == "REQUEST"
    assert str(ev["UID"]) == "6f1c2a7e-0b7d-4c1e-9a55-2f3b9d1e8c01@mend"
    assert ev["DTSTAMP"].dt == STAMP
    # 10:00 in London in June is 09:00 UTC, and it is written in UTC.
    assert ev["DTSTART"].dt == utc(2026, 6, 16, 9, 0) and ev["DTEND"].dt == utc(2026, 6, 16, 10, 30)
    assert ev["DTSTART"].dt.utcoffset() == timedelta(0)
    assert b"DTSTART:20260616T090000Z\r\n" in data and b"DTEND:20260616T103000Z\r\n" in data
    assert int(ev["SEQUENCE"]) == 0 and str(ev["STATUS"]) == "CONFIRMED"
    assert str(ev["SUMMARY"]) == "Restorative meeting"
    assert str(ev["LOCATION"]) == "Penrith Community Centre, Middlegate, Penrith CA11 7PT"
    assert str(ev["DESCRIPTION"]) == "Please come to the side entrance at 09:45.\nReference: CUM-2026-0142"
    assert str(ev["ORGANIZER"]) == "mailto:rj@cumbria.example.org"
    assert ev["ORGANIZER"].params["CN"] == "Cumbria RJ Service"
    attendees = ev["ATTENDEE"]
    assert [str(a) for a in attendees] == ["mailto:sam@example.org", "mailto:alex.jones@cumbria.example.org"]
    assert [a.params["CN"] for a in attendees] == ["Sam Taylor", "Alex Jones"]
    assert all(a.params["RSVP"] == "FALSE" and a.params["PARTSTAT"] == "NEEDS-ACTION" for a in attendees)


def test_the_file_is_rfc_5545_text_crlf_lines_folded_at_75_octets():
    data = ics(description="A long description " * 20)
    assert data.startswith(b"BEGIN:VCALENDAR\r\n") and data.endswith(b"END:VCALENDAR\r\n")
    lines = data.split(b"\r\n")
    assert all(b"\n" not in line and len(line) <= 75 for line in lines)
    assert data.count(b"BEGIN:VEVENT") == 1


def test_a_reschedule_keeps_the_uid_and_raises_the_sequence_and_a_cancel_marks_it_cancelled():
    first = event_of(ics())[1]
    moved = event_of(ics(sequence=1, starts_at=london(2026, 6, 18, 14, 0), ends_at=london(2026, 6, 18, 15, 0)))[1]
    cal, cancelled = event_of(ics(sequence=2, method="CANCEL"))
    assert first["UID"] == moved["UID"] == cancelled["UID"]
    assert (int(first["SEQUENCE"]), int(moved["SEQUENCE"]), int(cancelled["SEQUENCE"])) == (0, 1, 2)
    assert moved["DTSTART"].dt == utc(2026, 6, 18, 13, 0)
    assert str(cal["METHOD"]) == "CANCEL" and str(cancelled["STATUS"]) == "CANCELLED"


def test_text_with_commas_semicolons_newlines_and_welsh_reads_back_as_written():
    summary = "Cyfarfod adferol; ŵ ŷ â, \"dyfynnod\"\nail linell"
    _, ev = event_of(ics(summary=summary, location="Canolfan, Heol; Y Bala"))
    assert str(ev["SUMMARY"]) == summary and str(ev["LOCATION"]) == "Canolfan, Heol; Y Bala"


def test_a_name_with_quotes_or_line_breaks_cannot_break_the_file():
    _, ev = event_of(ics(attendees=[('Sam "The Hammer"\r\nX-EVIL:1 Taylor', "sam@example.org")]))
    assert ev["ATTENDEE"].params["CN"] == "Sam The Hammer X-EVIL:1 Taylor"
    assert "X-EVIL" not in ev


def test_the_same_inputs_give_the_same_bytes():
    assert ics() == ics()


def test_no_attendees_and_no_location_are_allowed():
    _, ev = event_of(ics(attendees=[], location="", description=""))
    assert "ATTENDEE" not in ev and "LOCATION" not in ev and "DESCRIPTION" not in ev


@pytest.mark.parametrize("kw", [
    dict(method="PUBLISH"),
    dict(starts_at=datetime(2026, 6, 16, 10, 0)),                       # naive
    dict(ends_at=london(2026, 6, 16, 10, 0)),                            # not after the start
    dict(sequence=-1), dict(sequence=1.0),
    dict(meeting_id=""), dict(meeting_id="a b"), dict(meeting_id="a@b"),
    dict(organizer_email="not an email"),
    dict(attendees=[("Sam", "sam@")]),
    dict(attendees=[("Sam", "sam@example.org\r\nATTENDEE:mailto:x@y.z")]),
])
def test_what_cannot_make_a_valid_file_is_refused(kw):
    with pytest.raises(ValueError):
        ics(**kw)


def test_dtstamp_defaults_to_now():
    _, ev = event_of(ics(stamp=None))
    assert abs(ev["DTSTAMP"].dt - datetime.now(timezone.utc)) < timedelta(minutes=1)
