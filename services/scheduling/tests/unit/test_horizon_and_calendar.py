"""From records to the optimiser's minutes and back (including a clock change), the control
measures a booking provides, and the calendars a facilitator subscribes to."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st
from icalendar import Calendar

from mend_scheduling.domain.calendar import facilitator_feed, meeting_invitation
from mend_scheduling.domain.horizon import LOCAL, Horizon, facilitator_spec, meeting_spec, plan_measures, venue_spec
from mend_scheduling.domain.records import (Absence, Facilitator, Meeting, MeetingNeeds, MeetingRequest, Room, Venue,
                                            WeeklyHours)

# 2026-10-19 is a Monday; British Summer Time ends on Sunday 25 October 2026.
CLOCK_CHANGE_WEEK = date(2026, 10, 19)


def facilitator(**changes) -> Facilitator:
    base = dict(facilitator_id="f1", county="gwent", name="Sam", email="sam@example.org", kind="volunteer",
                home_lat=51.58, home_lon=-2.99, districts=(),
                availability=(WeeklyHours("mon", time(9), time(12)), WeeklyHours("mon", time(18), time(20)),
                              WeeklyHours("thu", time(9), time(17))),
                max_minutes_per_week=300, vetting_date=date(2026, 1, 10), vetting_expires_on=date(2026, 10, 28),
                training_level="practitioner")
    base.update(changes)
    return Facilitator(**base)


def venue(**changes) -> Venue:
    base = dict(venue_id="v1", county="gwent", name="Maindee Hall", address="1 High St, Newport", lat=51.58,
                lon=-2.98, kind="community_room", neutral=True, accessibility=("step_free",),
                rooms=(Room("r1", "Main", 12), Room("w1", "Waiting A", 4, True), Room("w2", "Waiting B", 4, True)),
                separate_waiting_rooms=True, opening=(WeeklyHours("mon", time(8), time(21)),),
                travel_notes="Bus 30 from the centre", refreshments="Tea and coffee")
    base.update(changes)
    return Venue(**base)


def meeting(**changes) -> Meeting:
    base = dict(meeting_id="m1", county="gwent", case_id="c0ffee00-0000-4000-8000-000000000001", request_id="r1",
                kind="conference", starts_at=datetime(2026, 10, 26, 10, tzinfo=LOCAL),
                ends_at=datetime(2026, 10, 26, 13, tzinfo=LOCAL), venue_id="v1", room_id="r1",
                participant_ids=("p-victim", "p-offender"), facilitator_ids=("f1", "f2"),
                plan_measures=("co_facilitation",))
    base.update(changes)
    return Meeting(**base)


# -- horizon ------------------------------------------------------------------------------------
def test_a_horizon_starts_on_a_monday():
    with pytest.raises(ValueError):
        Horizon.weeks_from(date(2026, 10, 20), 1)


def test_weekly_hours_stay_on_the_wall_clock_across_the_clock_change():
    h = Horizon.weeks_from(CLOCK_CHANGE_WEEK, 2)
    windows = h.weekly([WeeklyHours("mon", time(9), time(12))])
    assert [(w.start, w.end) for w in windows] == [(9 * 60, 12 * 60), (7 * 1440 + 9 * 60, 7 * 1440 + 12 * 60)]
    # 09:00 on the second Monday is 09:00 GMT (UTC), the first was 09:00 BST (08:00 UTC).
    assert h.instant_of(9 * 60).astimezone(timezone.utc).hour == 8
    assert h.instant_of(7 * 1440 + 9 * 60).astimezone(timezone.utc).hour == 9


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=8 * 7 * 1440 - 1))
def test_minutes_and_instants_convert_both_ways(minute):
    h = Horizon.weeks_from(CLOCK_CHANGE_WEEK, 8)
    instant = h.instant_of(minute)
    local = instant.replace(tzinfo=None)
    # The hour that happens twice when clocks go back maps to one instant; every other minute is exact.
    if not (local.date() == date(2026, 10, 25) and local.hour == 1):
        assert h.minute_of(instant) == minute


def test_a_facilitators_record_becomes_the_optimisers_view():
    h = Horizon.weeks_from(CLOCK_CHANGE_WEEK, 2)
    absent = Absence(datetime(2026, 10, 22, 0, tzinfo=LOCAL), datetime(2026, 10, 23, 0, tzinfo=LOCAL), "leave")
    booked = meeting(starts_at=datetime(2026, 10, 19, 10, tzinfo=LOCAL), ends_at=datetime(2026, 10, 19, 11,
                                                                                            tzinfo=LOCAL))
    spec = facilitator_spec(h, facilitator(absences=(absent,)), [booked])
    assert spec.vetting_expires_day == 9                       # 28 October is day 9 of the horizon
    assert len(spec.availability) == 6                         # two Mondays x 2 spans, two Thursdays
    assert [(b.start, b.end, b.counts_as_work) for b in spec.busy] == [
        (3 * 1440, 4 * 1440, False), (10 * 60, 11 * 60, True)]
    late = facilitator_spec(h, facilitator(vetting_date=date(2026, 10, 20)), [])
    assert late.vetting_expires_day < 0                         # not yet vetted when the horizon starts


def test_a_venue_offers_only_its_meeting_rooms_with_their_bookings():
    h = Horizon.weeks_from(CLOCK_CHANGE_WEEK, 1)
    spec = venue_spec(h, venue(), [meeting(starts_at=datetime(2026, 10, 19, 10, tzinfo=LOCAL),
                                           ends_at=datetime(2026, 10, 19, 13, tzinfo=LOCAL))])
    assert [r.room_id for r in spec.rooms] == ["r1"]
    assert [(b.start, b.end) for b in spec.rooms[0].busy] == [(600, 780)]


def test_a_request_becomes_a_meeting_to_place():
    h = Horizon.weeks_from(CLOCK_CHANGE_WEEK, 1)
    request = MeetingRequest(
        request_id="r1", county="gwent", case_id="case-1", kind="conference",
        earliest=datetime(2026, 10, 1, tzinfo=LOCAL), latest=datetime(2026, 11, 30, tzinfo=LOCAL),
        needs=MeetingNeeds(participant_ids=("p1", "p2"), supporter_present=True, languages=("cy",),
                           allocated_facilitators=("f1", "f2", "f3"), separate_waiting=True))
    spec = meeting_spec(h, request)
    assert (spec.earliest, spec.latest) == (0, 7 * 1440)       # clamped to the horizon
    assert spec.duration == 180 and spec.facilitators_needed == 2 and spec.attendees == 3
    assert spec.pinned_facilitators == ("f1", "f2") and spec.neutral_venue
    assert spec.persons == frozenset({"p1", "p2", "case-1"})


def test_supervision_pins_the_supervisees_and_adds_a_supervisor():
    request = MeetingRequest(request_id="r2", county="gwent", case_id="", kind="supervision",
                             earliest=datetime(2026, 10, 19, tzinfo=LOCAL), latest=datetime(2026, 10, 23, tzinfo=LOCAL),
                             needs=MeetingNeeds(supervisee_ids=("f7",)))
    assert request.facilitators_needed == 2 and request.pinned_facilitators == ("f7",)
    assert request.persons == frozenset()


def test_a_booking_names_the_measures_it_provides():
    request = MeetingRequest(request_id="r1", county="gwent", case_id="c", kind="conference",
                             earliest=datetime(2026, 10, 19, tzinfo=LOCAL), latest=datetime(2026, 10, 23, tzinfo=LOCAL),
                             needs=MeetingNeeds(participant_ids=("p1",), supporter_present=True))
    specialist = facilitator(facilitator_id="f2", accreditations=("sexual_harm",))
    assert plan_measures(request, venue(), [facilitator(), specialist]) == (
        "co_facilitation", "separate_arrival_and_waiting", "specialist_facilitator", "supporter_present")
    assert plan_measures(request, venue(kind="prison", separate_waiting_rooms=False), [facilitator()]) == (
        "prison_venue", "supporter_present")


# -- calendars ----------------------------------------------------------------------------------
def test_a_feed_lists_meetings_in_order_with_cancelled_ones_marked():
    first = meeting()
    cancelled = meeting(meeting_id="m2", starts_at=datetime(2026, 10, 20, 10, tzinfo=LOCAL),
                        ends_at=datetime(2026, 10, 20, 11, tzinfo=LOCAL), status="cancelled", sequence=2)
    home = meeting(meeting_id="m3", kind="preparation_visit", venue_id="", room_id="",
                   starts_at=datetime(2026, 10, 21, 10, tzinfo=LOCAL), ends_at=datetime(2026, 10, 21, 11, 30,
                                                                                         tzinfo=LOCAL))
    data = facilitator_feed("Sam", [first, cancelled, home], {"v1": venue()}, organizer_email="rj@gwent.example")
    cal = Calendar.from_ical(data)
    assert str(cal["METHOD"]) == "PUBLISH" and str(cal["X-WR-CALNAME"]) == "Mend: Sam"
    events = cal.walk("VEVENT")
    assert [str(e["UID"]) for e in events] == ["m2@mend", "m3@mend", "m1@mend"]
    assert [str(e["STATUS"]) for e in events] == ["CANCELLED", "CONFIRMED", "CONFIRMED"]
    assert int(events[0]["SEQUENCE"]) == 2
    assert events[2].decoded("DTSTART") == datetime(2026, 10, 26, 10, tzinfo=LOCAL)   # after the clock change
    assert "Participant's home" in str(events[1]["LOCATION"])
    assert "Maindee Hall, Main, 1 High St" in str(events[2]["LOCATION"])
    assert "Bus 30" in str(events[2]["DESCRIPTION"])
    assert str(events[2]["ORGANIZER"]) == "mailto:rj@gwent.example"
    # Participants are never named or identified in a calendar.
    assert b"p-victim" not in data and b"p-offender" not in data


def test_a_meetings_file_is_one_event_a_client_can_import():
    data = meeting_invitation(meeting(sequence=3), venue(), organizer_email="rj@gwent.example")
    cal = Calendar.from_ical(data)
    [event] = cal.walk("VEVENT")
    assert str(event["UID"]) == "m1@mend" and int(event["SEQUENCE"]) == 3
    assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(hours=3)
    assert data.startswith(b"BEGIN:VCALENDAR\r\n") and b"VERSION:2.0" in data and b"PRODID:" in data
    for line in data.split(b"\r\n"):
        assert len(line) <= 75          # RFC 5545 folds content lines at 75 octets
