"""Callers' input to records: every field checked and named, and no input at all, however odd,
gets anything but a record or a list of violations (never an exception a caller would see as
INTERNAL)."""
from __future__ import annotations

from datetime import timezone

from hypothesis import given, settings, strategies as st

from mend_common.errors import Violations
from mend_scheduling.service_layer import validation

GOOD_FACILITATOR = {
    "name": "Sam Jones", "email": "sam@example.org", "kind": "volunteer", "home_lat": 51.6, "home_lon": -3.0,
    "availability": [{"weekday": "tue", "start": "18:00", "end": "21:00"}], "max_hours_per_week": 5,
    "vetting_date": "2026-03-01", "vetting_expires_on": "2027-03-01", "training_level": "foundation",
    "languages": ["en", "CY"], "districts": ["Newport"], "conflicts": ["case-9"]}

GOOD_VENUE = {
    "name": "Maindee Hall", "address": "1 High St", "lat": 51.58, "lon": -2.98, "kind": "community_room",
    "neutral": True, "accessibility": ["step_free"], "separate_waiting_rooms": True,
    "rooms": [{"name": "Main", "capacity": 12}, {"name": "A", "capacity": 4, "waiting_room": True},
              {"name": "B", "capacity": 4, "waiting_room": True}],
    "opening": [{"weekday": "mon", "start": "09:00", "end": "21:00"}]}


def _facilitator(data):
    v = Violations()
    record = validation.facilitator(v, data, facilitator_id="f1", county="gwent", version=1)
    return record, {x.field: x.rule for x in v.items}


def _venue(data):
    v = Violations()
    record = validation.venue(v, data, venue_id="v1", county="gwent", version=1)
    return record, {x.field: x.rule for x in v.items}


def test_a_good_facilitator_is_taken_as_given():
    record, problems = _facilitator(GOOD_FACILITATOR)
    assert problems == {}
    assert record.languages == ("en", "cy") and record.max_minutes_per_week == 300
    assert record.districts == ("newport",) and record.conflicts == ("case-9",)


def test_vetting_lasts_at_most_a_year():
    _, problems = _facilitator({**GOOD_FACILITATOR, "vetting_expires_on": "2027-06-01"})
    assert "12 months" in problems["vetting_expires_on"]


def test_overlapping_or_backwards_hours_are_named():
    _, problems = _facilitator({**GOOD_FACILITATOR, "availability": [
        {"weekday": "tue", "start": "18:00", "end": "21:00"}, {"weekday": "tue", "start": "20:00", "end": "22:00"},
        {"weekday": "wed", "start": "12:00", "end": "11:00"}]})
    assert "overlap" in problems["availability"] and "after start" in problems["availability[2].end"]


def test_a_venue_needs_a_meeting_room_and_opening_hours():
    record, problems = _venue(GOOD_VENUE)
    assert problems == {} and [r.name for r in record.meeting_rooms] == ["Main"]
    _, problems = _venue({**GOOD_VENUE, "rooms": [{"name": "A", "capacity": 4, "waiting_room": True}],
                          "separate_waiting_rooms": False, "opening": [], "kind": "participants_home"})
    assert {"rooms", "opening", "kind"} <= set(problems)


def test_a_prison_or_police_station_is_never_neutral_ground():
    record, _ = _venue({**GOOD_VENUE, "kind": "prison", "neutral": True})
    assert record.neutral is False


def test_meeting_needs_follow_the_kind():
    v = Violations()
    validation.meeting_needs(v, {"participant_ids": [], "facilitators_needed": 1, "at_home": True}, "conference")
    fields = {x.field for x in v.items}
    assert {"participant_ids", "facilitators_needed", "at_home"} <= fields
    v = Violations()
    validation.meeting_needs(v, {"participant_ids": ["6f1c1d55-3a55-4a77-8f8e-2f2b0b6f7f11"]}, "supervision")
    assert {x.field for x in v.items} == {"participant_ids", "supervisee_ids"}
    v = Violations()
    validation.meeting_needs(v, {"participant_ids": ["6f1c1d55-3a55-4a77-8f8e-2f2b0b6f7f11"]}, "pre_prison_visit")
    assert {x.field for x in v.items} == {"prison_venue_id"}


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
    | st.datetimes(timezones=st.just(timezone.utc)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)


def _mutated(base: dict):
    return st.dictionaries(st.sampled_from(sorted(base) + ["extra"]), ANY_JSON, max_size=6).map(
        lambda changes: {**base, **changes})


@settings(max_examples=300, deadline=None)
@given(_mutated(GOOD_FACILITATOR))
def test_any_facilitator_input_is_a_record_or_named_violations(data):
    record, problems = _facilitator(data)
    assert (record is None) == bool(problems)


@settings(max_examples=300, deadline=None)
@given(_mutated(GOOD_VENUE))
def test_any_venue_input_is_a_record_or_named_violations(data):
    record, problems = _venue(data)
    assert (record is None) == bool(problems)


@settings(max_examples=300, deadline=None)
@given(_mutated({"participant_ids": ["6f1c1d55-3a55-4a77-8f8e-2f2b0b6f7f11"], "duration_minutes": 90,
                 "languages": ["cy"], "accessibility": ["step_free"], "near_lat": 51.0, "near_lon": -3.0}),
       st.sampled_from(["preparation_visit", "pre_prison_visit", "conference", "indirect_session", "supervision"]))
def test_any_meeting_needs_input_is_checked_without_an_exception(data, kind):
    v = Violations()
    needs = validation.meeting_needs(v, data, kind)
    assert all(x.field and x.rule for x in v.items)
    if not v:
        assert needs.duration_minutes % 30 == 0 and 0 <= needs.facilitators_needed <= 4
