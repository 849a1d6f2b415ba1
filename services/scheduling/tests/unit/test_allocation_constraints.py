"""Each hard rule on a tiny instance where it is the only thing between the solvers and a tempting
(cheaper) choice. Every case is built twice: without the rule biting, both greedy and CP-SAT make
the tempting choice (so the case really tests the rule); with it, both avoid it, still place the
meetings and pass the checker, and the checker flags the tempting plan as breaking it."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import pytest

from allocation_examples import (
    FAR, HOME_AT, at, days_window, facilitator, meeting, placement_of, problem, room, venue,
)
from mend_scheduling.domain import allocation, checker
from mend_scheduling.domain.planning import Busy, Placement, Plan, PlanningProblem, Window


def team(plan: Plan, mid: str = "m-1") -> tuple[str, ...]:
    p = placement_of(plan, mid)
    return p.facilitator_ids if p else ()


def where(plan: Plan, mid: str = "m-1") -> str:
    p = placement_of(plan, mid)
    return p.venue_id if p else "-"


def two_facilitators(**near_fields):
    return [facilitator("f-near", **near_fields), facilitator("f-far", home=FAR)]


def two_venues(**near_fields):
    return [venue("v-near", **near_fields), venue("v-far", location=FAR)]


ONE_MORNING = dict(earliest=at(0, 9), latest=at(0, 12))


@dataclass
class Case:
    name: str
    build: Callable[[bool], PlanningProblem]     # rule biting? -> problem
    tempting: Callable[[Plan], bool]
    mentions: str                                  # a word the checker's complaint contains
    # A hand-made tempting plan from the plan under the rule, where the free plan is not one (its
    # meetings sit elsewhere in time); None: the free plan is the tempting plan.
    breaking: Callable[[Plan], list[Placement]] | None = None


def facilitator_case(name, near_blocked, near_free=None, meeting_fields=None, far_fields=None, mentions="f-near"):
    def build(blocked: bool) -> PlanningProblem:
        near = near_blocked if blocked else (near_free or {})
        return problem([meeting("m-1", **(meeting_fields or {}))],
                       [facilitator("f-near", **near), facilitator("f-far", home=FAR, **(far_fields or {}))],
                       two_venues())
    return Case(name, build, lambda plan: "f-near" in team(plan), mentions)


def venue_case(name, near_blocked, near_free=None, meeting_fields=None, far_fields=None, mentions="v-near"):
    def build(blocked: bool) -> PlanningProblem:
        near = near_blocked if blocked else (near_free or {})
        return problem([meeting("m-1", **(meeting_fields or {}))],
                       [facilitator("f-near"), facilitator("f-far", home=FAR)],
                       [venue("v-near", **near), venue("v-far", location=FAR, **(far_fields or {}))])
    return Case(name, build, lambda plan: where(plan) == "v-near", mentions)


def _pinned(blocked):
    m = meeting("m-1", pinned_facilitators=("f-far",) if blocked else ())
    return problem([m], two_facilitators(), two_venues())


def _shared_week(blocked):
    ms = [meeting("m-1", earliest=at(0, 9), latest=at(0, 17)), meeting("m-2", earliest=at(1, 9), latest=at(1, 17))]
    return problem(ms, two_facilitators(max_minutes_per_week=90 if blocked else 600),
                   [venue("v-near", rooms=(room("r1"), room("r2")))])


def _double_facilitator(blocked):
    ms = [meeting("m-1", **ONE_MORNING), meeting("m-2", earliest=at(0 if blocked else 1, 9), latest=at(0 if blocked else 1, 12))]
    # One slot each morning: earliest start is cheapest, and both want f-near.
    ms = [replace(m, duration=180) for m in ms]
    return problem(ms, two_facilitators(), [venue("v-near", rooms=(room("r1"), room("r2")))])


def _double_room(blocked):
    ms = [replace(meeting("m-1", **ONE_MORNING), duration=180), replace(meeting("m-2", **ONE_MORNING), duration=180)]
    near_rooms = (room("v-near-r1"),) if blocked else (room("v-near-r1"), room("v-near-r2"))
    return problem(ms, [facilitator("f-near"), facilitator("f-near-2")],
                   [venue("v-near", rooms=near_rooms), venue("v-far", location=FAR)])


def _fixed(blocked):
    m1 = replace(meeting("m-1", **ONE_MORNING), duration=180)
    m2 = replace(meeting("m-2", earliest=at(0, 9), latest=at(2, 17)), duration=180)
    fixed = Placement("m-2", at(0 if blocked else 1, 9), ("f-near",), "v-near", "v-near-r2")
    return problem([m1, m2], two_facilitators(), [venue("v-near", rooms=(room("v-near-r1"), room("v-near-r2")))],
                   fixed=(fixed,))


CASES = [
    facilitator_case("county", dict(county="powys")),
    facilitator_case("active", dict(active=False)),
    Case("pinned", _pinned, lambda plan: "f-far" not in team(plan), "f-far"),
    facilitator_case("vetting", dict(vetting_expires_day=1), meeting_fields=dict(earliest=at(2, 0), latest=at(4, 0))),
    facilitator_case("training", dict(training_level="practitioner"), dict(training_level="advanced"),
                     dict(min_training_level="advanced"), dict(training_level="advanced")),
    facilitator_case("accreditation", {}, dict(accreditations=frozenset({"sexual_harm"})),
                     dict(required_accreditations=frozenset({"sexual_harm"})),
                     dict(accreditations=frozenset({"sexual_harm"}))),
    facilitator_case("availability", dict(availability=days_window(0, 6, 13, 17)), meeting_fields=ONE_MORNING),
    facilitator_case("one window, not two touching ones",
                     dict(availability=(Window(at(0, 9), at(0, 10)), Window(at(0, 10), at(0, 11)))),
                     dict(availability=(Window(at(0, 9), at(0, 11)),)),
                     dict(earliest=at(0, 9), latest=at(0, 11), duration=120)),
    facilitator_case("busy", dict(busy=(Busy(at(0, 9), at(0, 12)),)), meeting_fields=ONE_MORNING),
    facilitator_case("district", dict(districts=frozenset({"cwmbran"})), dict(districts=frozenset({"newport"})),
                     dict(district="newport")),
    facilitator_case("weekly hours", dict(max_minutes_per_week=120, busy=(Busy(at(1, 9), at(1, 10)),)),
                     dict(max_minutes_per_week=120, busy=(Busy(at(1, 9), at(1, 10), counts_as_work=False),)),
                     dict(duration=90, **ONE_MORNING)),
    Case("weekly hours shared by new meetings", _shared_week,
         lambda plan: team(plan, "m-1") == ("f-near",) and team(plan, "m-2") == ("f-near",), "f-near"),
    facilitator_case("conflict with a person", dict(conflicts=frozenset({"p-m-1"}))),
    facilitator_case("conflict with the case", dict(conflicts=frozenset({"case-m-1"}))),
    facilitator_case("language", {}, dict(languages=frozenset({"en", "cy"})), dict(languages=frozenset({"cy"})),
                     dict(languages=frozenset({"en", "cy"})), mentions="cy"),
    Case("facilitator double booking", _double_facilitator,
         lambda plan: team(plan, "m-1") == ("f-near",) and team(plan, "m-2") == ("f-near",), "f-near",
         lambda plan: [replace(p, facilitator_ids=("f-near",)) for p in plan.placements]),
    Case("room double booking", _double_room,
         lambda plan: where(plan, "m-1") == where(plan, "m-2") == "v-near", "v-near-r1",
         lambda plan: [replace(p, venue_id="v-near", room_id="v-near-r1") for p in plan.placements]),
    venue_case("room busy", dict(rooms=(room("v-near-r1", busy=(Busy(at(0, 8), at(0, 13)),)),)),
               meeting_fields=ONE_MORNING, mentions="v-near-r1"),
    venue_case("room capacity", dict(rooms=(room("v-near-r1", capacity=4),)), meeting_fields=dict(attendees=4),
               mentions="v-near-r1"),
    venue_case("opening", dict(opening=days_window(0, 6, 13, 21)), meeting_fields=ONE_MORNING),
    venue_case("accessibility", {}, dict(accessibility=frozenset({"quiet_room"})),
               dict(accessibility=frozenset({"quiet_room"})), dict(accessibility=frozenset({"quiet_room"}))),
    venue_case("separate waiting rooms", dict(separate_waiting_rooms=False), meeting_fields=dict(separate_waiting=True)),
    venue_case("neutral ground", dict(neutral=False, kind="police_station"), meeting_fields=dict(neutral_venue=True)),
    Case("prison visit in its prison",
         lambda blocked: problem([meeting("m-1", prison_venue_id="v-far" if blocked else "")], two_facilitators(),
                                 [venue("v-near"), venue("v-far", location=FAR, kind="prison" if blocked else "school")]),
         lambda plan: where(plan) == "v-near", "v-far"),
    venue_case("a prison hosts only its own visits", dict(kind="prison")),
    Case("fixed placement holds its facilitator", _fixed, lambda plan: team(plan, "m-1") == ("f-near",), "f-near",
         lambda plan: [replace(p, facilitator_ids=("f-near",)) if p.meeting_id == "m-1" else p for p in plan.placements]),
]


def _plans(p: PlanningProblem) -> dict[str, Plan]:
    return {"greedy": allocation.greedy(p), "cp-sat": allocation.optimise(p, time_limit=5.0)}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_only_the_rule_stops_the_tempting_choice(case: Case):
    free = case.build(False)
    blocked = case.build(True)
    for method, plan in _plans(free).items():
        assert checker.violations(free, plan.placements) == [], method
        assert case.tempting(plan), f"{method} did not take the tempting choice without the rule: {plan.placements}"
        if case.breaking is None:
            flagged = checker.violations(blocked, plan.placements)
            assert flagged, f"the checker does not flag {method}'s tempting plan under the rule"
            assert any(case.mentions in v for v in flagged), flagged
    for method, plan in _plans(blocked).items():
        if case.breaking is not None:
            flagged = checker.violations(blocked, case.breaking(plan))
            assert any(case.mentions in v for v in flagged), flagged
        assert checker.violations(blocked, plan.placements) == [], (method, checker.violations(blocked, plan.placements))
        assert not case.tempting(plan), f"{method} broke the rule: {plan.placements}"
        placed = {p.meeting_id for p in plan.placements}
        assert placed == {m.meeting_id for m in blocked.meetings}, (method, plan.unplaced)
        assert plan.report.objective == checker.objective(blocked, plan.placements)


def test_starts_respect_the_grid_and_the_window():
    m = meeting("m-1", earliest=at(0, 9) + 10, latest=at(0, 11) + 10, duration=60)
    p = problem([m], [facilitator("f-near")], [venue("v-near")])
    for plan in _plans(p).values():
        (placed,) = plan.placements
        assert placed.start % p.slot_minutes == 0
        assert m.earliest <= placed.start and placed.start + m.duration <= m.latest
        assert placed.start == at(0, 9) + 30     # the first start on the grid: no waiting, same day anyway


def test_a_team_has_the_size_the_meeting_needs_with_distinct_people():
    m = meeting("m-1", facilitators_needed=2, languages=frozenset({"cy"}))
    fs = [facilitator("f-near"), facilitator("f-near-2"), facilitator("f-far", home=FAR, languages=frozenset({"en", "cy"}))]
    p = problem([m], fs, [venue("v-near")])
    for plan in _plans(p).values():
        assert checker.violations(p, plan.placements) == []
        (placed,) = plan.placements
        assert len(set(placed.facilitator_ids)) == 2 and "f-far" in placed.facilitator_ids


def test_home_visits_book_no_venue():
    m = meeting("m-1", home=HOME_AT)
    p = problem([m], two_facilitators(), two_venues())
    for plan in _plans(p).values():
        (placed,) = plan.placements
        assert placed.venue_id == "" and placed.room_id == ""
        assert placed.facilitator_ids == ("f-near",)
        assert checker.violations(p, plan.placements) == []


def test_fixed_placements_come_back_unchanged():
    p = _fixed(True)
    for plan in _plans(p).values():
        assert p.fixed[0] in plan.placements
        assert sum(1 for x in plan.placements if x.meeting_id == "m-2") == 1
