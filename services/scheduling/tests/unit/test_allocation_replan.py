"""Re-planning one meeting: the others stay exactly where they are, the meeting finds the best slot
left, and when there is none the plan says why."""
from __future__ import annotations

from dataclasses import replace

import pytest

from allocation_examples import at, facilitator, meeting, placement_of, problem, room, venue
from mend_scheduling.domain import allocation, checker
from mend_scheduling.domain.planning import Busy, Placement


def _three_meetings():
    ms = [meeting(f"m-{i}", earliest=at(0, 9), latest=at(1, 17)) for i in range(3)]
    return problem(ms, [facilitator("f-1"), facilitator("f-2")], [venue("v-1", rooms=(room("r-1"), room("r-2")))],
                   horizon_days=2)


def _with_room_taken(p, room_id: str, start: int, end: int):
    venues = tuple(replace(v, rooms=tuple(replace(r, busy=r.busy + (Busy(start, end),)) if r.room_id == room_id else r
                                          for r in v.rooms)) for v in p.venues)
    return replace(p, venues=venues)


def test_a_cancelled_slot_is_replaced_and_nothing_else_moves():
    p = _three_meetings()
    plan = allocation.optimise(p, time_limit=5.0)
    old = placement_of(plan, "m-1")
    changed = _with_room_taken(p, old.room_id, old.start, old.start + 60)
    again = allocation.replan(changed, plan.placements, "m-1")
    assert checker.violations(changed, again.placements) == []
    assert {x for x in plan.placements if x.meeting_id != "m-1"} <= set(again.placements)
    new = placement_of(again, "m-1")
    assert new is not None and (new.start, new.room_id) != (old.start, old.room_id)
    assert again.report.objective == checker.objective(changed, again.placements)
    assert again.report.status == "OPTIMAL"


def test_re_planning_finds_the_best_slot_left():
    p = _three_meetings()
    current = [Placement("m-0", at(0, 9), ("f-1",), "v-1", "r-1"),
               Placement("m-1", at(1, 15), ("f-2",), "v-1", "r-2"),    # a day late: waiting costs
               Placement("m-2", at(0, 9), ("f-2",), "v-1", "r-2")]
    again = allocation.replan(p, current, "m-1")
    assert placement_of(again, "m-1").start // (24 * 60) == 0          # back to the first day
    assert again.report.objective < checker.objective(p, current)


def test_a_meeting_with_nowhere_left_is_explained():
    ms = [meeting("m-0", earliest=at(0, 9), latest=at(0, 10)), meeting("m-1", earliest=at(0, 9), latest=at(0, 10))]
    p = problem(ms, [facilitator("f-1")], [venue("v-1", rooms=(room("r-1"), room("r-2")))], horizon_days=1)
    current = [Placement("m-0", at(0, 9), ("f-1",), "v-1", "r-1")]
    again = allocation.replan(p, current, "m-1")
    assert again.placements == tuple(current)
    (unplaced,) = again.unplaced
    assert unplaced.meeting_id == "m-1"
    assert unplaced.reasons == ("no facilitator eligible for it has free time in the window (day 1 of the plan) "
                                "around existing bookings, leave and meetings already placed",)


def test_only_known_unfixed_meetings_can_be_re_planned():
    p = _three_meetings()
    with pytest.raises(ValueError):
        allocation.replan(p, [], "m-404")
    fixed = Placement("m-0", at(0, 9), ("f-1",), "v-1", "r-1")
    with pytest.raises(ValueError):
        allocation.replan(replace(p, fixed=(fixed,)), [fixed], "m-0")
