"""The independent checker: each hard rule is flagged with a sentence naming what broke it, a valid
plan passes, and the objective adds up term by term as documented."""
from __future__ import annotations

from dataclasses import replace

import pytest

from allocation_examples import (
    DAY, FAR, HOME_AT, NEAR, VENUE_AT, at, facilitator, meeting, problem, room, venue,
)
from mend_scheduling.domain import checker
from mend_scheduling.domain.planning import Busy, Placement, Point, Weights, Window


def base():
    return problem([meeting("m-1")], [facilitator("f-near"), facilitator("f-far", home=FAR)],
                   [venue("v-near"), venue("v-far", location=FAR)])


GOOD = Placement("m-1", at(0, 10), ("f-near",), "v-near", "v-near-r1")


def test_a_valid_placement_passes():
    assert checker.violations(base(), [GOOD]) == []
    assert checker.violations(base(), []) == []


@pytest.mark.parametrize("placement, words", [
    (replace(GOOD, start=at(0, 10) + 15), ["m-1", "grid"]),
    (replace(GOOD, start=at(7, 10)), ["m-1", "window"]),
    (replace(GOOD, start=-60), ["m-1", "horizon"]),
    (replace(GOOD, facilitator_ids=("f-near", "f-far")), ["m-1", "needs 1"]),
    (replace(GOOD, facilitator_ids=("f-near", "f-near")), ["m-1", "twice"]),
    (replace(GOOD, facilitator_ids=("f-ghost",)), ["f-ghost", "unknown"]),
    (replace(GOOD, venue_id=""), ["m-1", "no venue"]),
    (replace(GOOD, venue_id="v-ghost"), ["v-ghost"]),
    (replace(GOOD, room_id="v-far-r1"), ["v-far-r1", "v-near"]),
    (replace(GOOD, meeting_id="m-ghost"), ["m-ghost", "unknown"]),
])
def test_placement_rules_are_flagged(placement, words):
    found = checker.violations(base(), [placement])
    assert found, placement
    assert any(all(w in v for w in words) for v in found), found


@pytest.mark.parametrize("change, words", [
    (dict(county="powys"), ["f-near", "powys"]),
    (dict(active=False), ["f-near", "inactive"]),
    (dict(vetting_expires_day=-1), ["f-near", "vetting"]),
    (dict(training_level="foundation"), ["f-near", "training"]),
    (dict(availability=(Window(at(0, 13), at(0, 17)),)), ["f-near", "available"]),
    (dict(availability=(Window(at(0, 9), at(0, 10) + 30), Window(at(0, 10) + 30, at(0, 12)))), ["f-near", "available"]),
    (dict(busy=(Busy(at(0, 10) + 30, at(0, 12)),)), ["f-near", "busy"]),
    (dict(districts=frozenset({"cwmbran"})), ["f-near", "district"]),
    (dict(conflicts=frozenset({"p-m-1"})), ["f-near", "conflict"]),
    (dict(conflicts=frozenset({"case-m-1"})), ["f-near", "conflict"]),
    (dict(accreditations=frozenset()), ["f-near", "accreditation"]),
    (dict(languages=frozenset({"en"})), ["m-1", "cy"]),
    (dict(max_minutes_per_week=120, busy=(Busy(at(1, 9), at(1, 10) + 30),)), ["f-near", "week 1"]),
])
def test_facilitator_rules_are_flagged(change, words):
    p = base()
    m = replace(p.meetings[0], min_training_level="practitioner", district="newport",
                required_accreditations=frozenset({"domestic_abuse"}), languages=frozenset({"cy"}))
    f = facilitator("f-near", accreditations=frozenset({"domestic_abuse"}), languages=frozenset({"en", "cy"}))
    p = replace(p, meetings=(m,), facilitators=(f, p.facilitators[1]))
    assert checker.violations(p, [GOOD]) == []
    p = replace(p, facilitators=(replace(f, **change), p.facilitators[1]))
    found = checker.violations(p, [GOOD])
    assert any(all(w in v for w in words) for v in found), found


def test_pinned_facilitator_must_be_booked():
    p = base()
    p = replace(p, meetings=(replace(p.meetings[0], pinned_facilitators=("f-far",)),))
    found = checker.violations(p, [GOOD])
    assert any("f-far" in v and "pinned" in v for v in found), found


@pytest.mark.parametrize("venue_change, meeting_change, words", [
    (dict(rooms=(room("v-near-r1", capacity=2),)), dict(attendees=2), ["v-near-r1", "seats"]),
    (dict(opening=(Window(at(0, 13), at(0, 21)),)), {}, ["v-near", "open"]),
    (dict(accessibility=frozenset()), dict(accessibility=frozenset({"step_free"})), ["v-near", "step_free"]),
    (dict(separate_waiting_rooms=False), dict(separate_waiting=True), ["v-near", "waiting"]),
    (dict(neutral=False, kind="police_station"), dict(neutral_venue=True), ["v-near", "neutral"]),
    ({}, dict(prison_venue_id="v-far"), ["m-1", "v-far"]),
    (dict(kind="prison"), {}, ["v-near", "prison"]),
    (dict(county="powys"), {}, ["v-near", "powys"]),
    (dict(rooms=(room("v-near-r1", busy=(Busy(at(0, 9), at(0, 10) + 30),)),)), {}, ["v-near-r1", "booked"]),
])
def test_venue_rules_are_flagged(venue_change, meeting_change, words):
    p = base()
    p = replace(p, meetings=(replace(p.meetings[0], **meeting_change),),
                venues=(replace(p.venues[0], **venue_change), p.venues[1]))
    found = checker.violations(p, [GOOD])
    assert any(all(w in v for w in words) for v in found), found


def test_home_visits_book_no_venue_and_others_need_one():
    p = base()
    home = replace(p.meetings[0], home=HOME_AT)
    p_home = replace(p, meetings=(home,))
    assert checker.violations(p_home, [replace(GOOD, venue_id="", room_id="")]) == []
    assert any("home visit m-1" in v for v in checker.violations(p_home, [GOOD]))
    assert any("no venue" in v for v in checker.violations(p, [replace(GOOD, venue_id="", room_id="")]))


def test_double_booking_of_facilitators_and_rooms():
    p = base()
    p = replace(p, meetings=(meeting("m-1"), meeting("m-2")))
    other = Placement("m-2", at(0, 10) + 30, ("f-near",), "v-near", "v-near-r1")
    found = checker.violations(p, [GOOD, other])
    assert any("f-near" in v and "double booked" in v for v in found), found
    assert any("v-near-r1" in v and "double booked" in v for v in found), found
    apart = replace(other, start=at(0, 11))   # back to back is fine
    assert checker.violations(p, [GOOD, apart]) == []


def test_weekly_hours_count_new_meetings_together():
    p = base()
    f = facilitator("f-near", max_minutes_per_week=90)
    p = replace(p, meetings=(meeting("m-1"), meeting("m-2")), facilitators=(f, p.facilitators[1]))
    second = Placement("m-2", at(1, 10), ("f-near",), "v-near", "v-near-r1")
    found = checker.violations(p, [GOOD, second])
    assert any("f-near" in v and "120 minutes in week 1" in v for v in found), found
    next_week = replace(p, horizon_days=14, meetings=(meeting("m-1"), meeting("m-2", latest=14 * DAY)))
    assert checker.violations(next_week, [GOOD, replace(second, start=at(8, 10))]) == []


def test_fixed_placements_must_stay_and_meetings_appear_once():
    p = replace(base(), fixed=(GOOD,))
    assert checker.violations(p, [GOOD]) == []
    assert any("fixed" in v for v in checker.violations(p, [replace(GOOD, start=at(0, 11))]))
    assert any("fixed" in v for v in checker.violations(p, []))
    assert any("2 times" in v for v in checker.violations(base(), [GOOD, replace(GOOD, start=at(1, 10))]))


# ---- the objective ----------------------------------------------------------------------------
def test_objective_adds_up_as_documented():
    w = Weights(unplaced=1000, travel_km=10, participant_km=5, waiting_day=20, overload_hour=30)
    near_participants = Point(51.65, -3.00)
    m1 = meeting("m-1", earliest=at(0, 0), near=near_participants)
    m2 = meeting("m-2")
    f = facilitator("f-near", max_minutes_per_week=600)
    p = problem([m1, m2], [f], [venue("v-near")], weights=w)
    placement = Placement("m-1", at(2, 10), ("f-near",), "v-near", "v-near-r1")
    # One facilitator holds all capacity, demand is 120 minutes, so their share is 120: no overload.
    expected = (1000                                                     # m-2 unplaced
                + 20 * 2                                                 # two days' wait
                + round(5 * near_participants.km_to(VENUE_AT))           # participants' travel
                + round(10 * NEAR.km_to(VENUE_AT)))                      # facilitator's travel
    assert checker.objective(p, [placement]) == expected


def test_overload_is_minutes_above_an_even_share_floored_to_points():
    w = Weights(unplaced=0, travel_km=0, participant_km=0, waiting_day=0, overload_hour=30)
    # Two facilitators with equal capacity (7 days x ... one week of 300 minutes each); demand 240.
    fa = facilitator("f-a", max_minutes_per_week=300)
    fb = facilitator("f-b", max_minutes_per_week=300)
    ms = [meeting(f"m-{i}", duration=60) for i in range(4)]
    p = problem(ms, [fa, fb], [venue("v-near", rooms=(room("r1"), room("r2")))], weights=w)
    shares = checker.even_shares(p)
    assert shares == {"f-a": 120, "f-b": 120}
    all_to_a = [Placement(f"m-{i}", at(i, 10), ("f-a",), "v-near", "r1") for i in range(4)]
    # f-a works 240 minutes, 120 above their share: 30 points an hour for 2 hours.
    assert checker.objective(p, all_to_a) == 60
    three = all_to_a[:3]     # 60 minutes over: 30 points
    assert checker.objective(p, three) == 30
    odd = [replace(all_to_a[0], meeting_id="m-0")] + [Placement("m-1", at(1, 10), ("f-a",), "v-near", "r1")]
    p_odd = replace(p, meetings=(replace(ms[0], duration=90), replace(ms[1], duration=60), ms[2], ms[3]))
    # demand 270, shares 135 each; f-a works 150: 15 minutes over -> floor(30 * 15 / 60) = 7
    assert checker.even_shares(p_odd)["f-a"] == 135
    assert checker.objective(p_odd, odd) == 7
