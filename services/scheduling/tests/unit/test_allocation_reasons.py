"""Why a meeting could not be placed: one cause at a time, the sentence a coordinator gets for it,
from greedy and from CP-SAT alike."""
from __future__ import annotations

from allocation_examples import at, days_window, facilitator, meeting, problem, room, venue
from mend_scheduling.domain import allocation, checker
from mend_scheduling.domain.planning import Busy, Window


def reasons_for(p, meeting_id="m-1"):
    out = []
    for plan in (allocation.greedy(p), allocation.optimise(p, time_limit=5.0)):
        assert checker.violations(p, plan.placements) == []
        assert all(x.meeting_id != meeting_id for x in plan.placements)
        (unplaced,) = [u for u in plan.unplaced if u.meeting_id == meeting_id]
        out.append(unplaced.reasons)
    assert out[0] == out[1], "greedy and CP-SAT explain the same cause differently"
    return out[0]


def test_nobody_speaks_the_language():
    p = problem([meeting("m-1", languages=frozenset({"cy"}))], [facilitator("f-1")], [venue("v-1")])
    assert reasons_for(p) == ("no facilitator in gwent speaks Welsh (cy)",)


def test_a_speaker_exists_but_lacks_the_training():
    p = problem([meeting("m-1", languages=frozenset({"cy"}), min_training_level="advanced")],
                [facilitator("f-1", training_level="advanced"), facilitator("f-2", languages=frozenset({"en", "cy"}))],
                [venue("v-1")])
    (reason,) = reasons_for(p)
    assert reason.startswith("no facilitator in gwent who speaks Welsh (cy) meets its other needs")


def test_vetting_lapsed_for_the_whole_window():
    p = problem([meeting("m-1", earliest=at(3, 0), latest=at(6, 0))],
                [facilitator("f-1", vetting_expires_day=2), facilitator("f-2", vetting_expires_day=-5)], [venue("v-1")])
    (reason,) = reasons_for(p)
    assert reason == "no facilitator's police vetting is valid on any day in its window (days 4-6 of the plan)"


def test_no_venue_has_the_features():
    m = meeting("m-1", accessibility=frozenset({"step_free"}), separate_waiting=True)
    p = problem([m], [facilitator("f-1")],
                [venue("v-1", separate_waiting_rooms=False), venue("v-2", accessibility=frozenset())])
    assert reasons_for(p) == ("no venue in gwent offers step_free and separate waiting rooms",)


def test_the_advanced_facilitator_is_away_for_the_window():
    m = meeting("m-1", min_training_level="advanced", earliest=at(0, 0), latest=at(2, 0))
    p = problem([m], [facilitator("f-1", training_level="advanced", availability=days_window(3, 6)),
                      facilitator("f-2")], [venue("v-1")])
    (reason,) = reasons_for(p)
    assert reason.startswith("no facilitator with advanced training is available in the window")


def test_the_only_facilitator_is_booked_throughout():
    m = meeting("m-1", earliest=at(0, 9), latest=at(0, 17))
    p = problem([m], [facilitator("f-1", busy=(Busy(at(0, 8), at(0, 18)),))], [venue("v-1")])
    (reason,) = reasons_for(p)
    assert reason.startswith("no facilitator eligible for it has free time in the window")


def test_the_prison_has_no_opening_in_the_window():
    m = meeting("m-1", prison_venue_id="hmp-1", earliest=at(5, 0), latest=at(7, 0))
    prison = venue("hmp-1", kind="prison", opening=days_window(0, 4, 9.5, 16))
    p = problem([m], [facilitator("f-1")], [prison, venue("v-1")])
    assert reasons_for(p) == ("the prison venue hmp-1 has no opening in the window",)


def test_no_room_is_big_enough():
    m = meeting("m-1", attendees=9)
    p = problem([m], [facilitator("f-1")], [venue("v-1", rooms=(room("r-1", capacity=6),))])
    assert reasons_for(p) == ("no suitable venue has a room for 10 people",)


def test_a_pinned_facilitator_who_cannot_take_it():
    m = meeting("m-1", pinned_facilitators=("f-2",))
    p = problem([m], [facilitator("f-1"), facilitator("f-2", active=False)], [venue("v-1")])
    assert "its pinned facilitator f-2 is inactive" in reasons_for(p)


def test_too_few_facilitators_for_a_co_facilitated_meeting():
    m = meeting("m-1", facilitators_needed=2, min_training_level="practitioner")
    p = problem([m], [facilitator("f-1"), facilitator("f-2", training_level="foundation")], [venue("v-1")])
    assert reasons_for(p) == ("only 1 facilitator in gwent has practitioner training, it needs 2",)


def test_room_and_people_never_free_together():
    m = meeting("m-1", earliest=at(0, 9), latest=at(0, 17))
    p = problem([m], [facilitator("f-1", availability=(Window(at(0, 9), at(0, 12)),))],
                [venue("v-1", opening=(Window(at(0, 13), at(0, 21)),))])
    (reason,) = reasons_for(p)
    assert reason.startswith("no slot in the window has a free suitable room and an eligible facilitator available")


def test_options_taken_by_other_meetings():
    # Two meetings, one facilitator, one slot: one of them has to give way.
    ms = [meeting("m-1", earliest=at(0, 9), latest=at(0, 10)), meeting("m-2", earliest=at(0, 9), latest=at(0, 10))]
    p = problem(ms, [facilitator("f-1")], [venue("v-1", rooms=(room("r-1"), room("r-2")))])
    for plan in (allocation.greedy(p), allocation.optimise(p, time_limit=5.0)):
        assert len(plan.placements) == 1
        (unplaced,) = plan.unplaced
        assert unplaced.reasons == ("every feasible slot was taken by other meetings (2 options)",)


def test_every_cause_is_given_at_once():
    p = problem([meeting("m-1", county="powys")], [facilitator("f-1")], [venue("v-1")])
    assert reasons_for(p) == ("no facilitator works in powys", "there is no venue in powys (other than prisons)")


def test_more_pinned_facilitators_than_the_meeting_takes():
    m = meeting("m-1", pinned_facilitators=("f-1", "f-2"))
    p = problem([m], [facilitator("f-1"), facilitator("f-2")], [venue("v-1")])
    assert reasons_for(p) == ("it pins 2 facilitators but takes only 1",)
