"""Properties of greedy, CP-SAT, the LP bound and re-planning on random small instances, and a
brute-force enumerator (written here from the checker alone) that finds the true optimum of tiny
ones: CP-SAT must match it whenever it says OPTIMAL, and no bound may exceed it."""
from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocation_examples import DAY, HOUR, at
from mend_scheduling.domain import allocation, checker
from mend_scheduling.domain.candidates import Instance
from mend_scheduling.domain.cpsat import CountyModel
from mend_scheduling.domain.planning import (
    Busy, FacilitatorSpec, MeetingSpec, Placement, PlanningProblem, Point, RoomSpec, VenueSpec, Weights, Window,
)

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPANS = ((9, 13), (10, 12), (13, 17), (9, 17))


def _point(draw) -> Point:
    return Point(51.5 + draw(st.integers(0, 30)) / 100, -3.0 + draw(st.integers(0, 30)) / 100)


@st.composite
def instances(draw, max_meetings: int = 4, max_facilitators: int = 4, max_venues: int = 3, days: int = 2):
    counties = ["gwent"] if draw(st.integers(0, 4)) else ["gwent", "powys"]
    facilitators = []
    for i in range(draw(st.integers(1, max_facilitators))):
        windows = []
        for day in range(days):
            span = draw(st.sampled_from(SPANS + (None,)))
            if span:
                windows.append(Window(at(day, span[0]), at(day, span[1])))
        busy = ()
        if draw(st.booleans()):
            day, hour = draw(st.integers(0, days - 1)), draw(st.integers(9, 15))
            length = draw(st.sampled_from((60, 120)))
            busy = (Busy(at(day, hour), at(day, hour) + length, counts_as_work=draw(st.booleans())),)
        facilitators.append(FacilitatorSpec(
            facilitator_id=f"f-{i}", county=draw(st.sampled_from(counties)), kind="staff", home=_point(draw),
            training_level=draw(st.sampled_from(("foundation", "practitioner", "practitioner", "advanced"))),
            vetting_expires_day=draw(st.sampled_from((-1, 0, 400, 400, 400, 400))),
            max_minutes_per_week=draw(st.sampled_from((60, 120, 240, 600))), availability=tuple(windows), busy=busy,
            languages=frozenset({"en", "cy"}) if draw(st.integers(0, 3)) == 0 else frozenset({"en"}),
            accreditations=frozenset({"sexual_harm"}) if draw(st.integers(0, 3)) == 0 else frozenset(),
            conflicts=frozenset({"p-0"}) if draw(st.integers(0, 5)) == 0 else frozenset(),
            districts=frozenset({"north"}) if draw(st.integers(0, 7)) == 0 else frozenset(),
            active=draw(st.integers(0, 19)) > 0))
    venues = []
    for i in range(draw(st.integers(1, max_venues))):
        opening = []
        for day in range(days):
            span = draw(st.sampled_from(((8, 13), (9, 17), (12, 21), (8, 21))))
            opening.append(Window(at(day, span[0]), at(day, span[1])))
        rooms = []
        for r in range(draw(st.integers(1, 2))):
            room_busy = ()
            if draw(st.integers(0, 3)) == 0:
                day, hour = draw(st.integers(0, days - 1)), draw(st.integers(9, 15))
                room_busy = (Busy(at(day, hour), at(day, hour) + 60),)
            rooms.append(RoomSpec(f"v-{i}-r{r}", draw(st.sampled_from((3, 4, 8))), room_busy))
        venues.append(VenueSpec(
            venue_id=f"v-{i}", county=draw(st.sampled_from(counties)),
            kind="prison" if draw(st.integers(0, 7)) == 0 else "community_room", location=_point(draw),
            rooms=tuple(rooms), opening=tuple(opening), neutral=draw(st.integers(0, 3)) > 0,
            separate_waiting_rooms=draw(st.integers(0, 3)) > 0,
            accessibility=frozenset({"step_free"}) if draw(st.booleans()) else frozenset()))
    prisons = [v.venue_id for v in venues if v.kind == "prison"]
    meetings = []
    for i in range(draw(st.integers(1, max_meetings))):
        duration = draw(st.sampled_from((60, 120)))
        first_day = draw(st.integers(0, days - 1))
        earliest = at(first_day, draw(st.sampled_from((0, 9, 9, 11))))
        latest = min(days * DAY, earliest + draw(st.sampled_from((5 * HOUR, 8 * HOUR, DAY, 2 * DAY))))
        pinned = ()
        if draw(st.integers(0, 4)) == 0:
            pinned = (draw(st.sampled_from([f.facilitator_id for f in facilitators])),)
        meetings.append(MeetingSpec(
            meeting_id=f"m-{i}", case_id=f"case-{i % 2}", county=draw(st.sampled_from(counties)), kind="conference",
            duration=duration, earliest=earliest, latest=latest, facilitators_needed=draw(st.sampled_from((1, 1, 1, 2))),
            min_training_level=draw(st.sampled_from(("foundation", "foundation", "foundation", "practitioner", "advanced"))),
            languages=frozenset({"cy"}) if draw(st.integers(0, 7)) == 0 else frozenset(),
            accessibility=frozenset({"step_free"}) if draw(st.integers(0, 3)) == 0 else frozenset(),
            separate_waiting=draw(st.integers(0, 4)) == 0,
            prison_venue_id=draw(st.sampled_from(prisons)) if prisons and draw(st.integers(0, 3)) == 0 else "",
            attendees=draw(st.integers(0, 3)), persons=frozenset({f"p-{i}"}), pinned_facilitators=pinned,
            required_accreditations=frozenset({"sexual_harm"}) if draw(st.integers(0, 9)) == 0 else frozenset(),
            home=_point(draw) if draw(st.integers(0, 3)) == 0 else None,
            near=_point(draw) if draw(st.booleans()) else None,
            district=draw(st.sampled_from(("", "", "north", "south"))), neutral_venue=draw(st.integers(0, 4)) == 0))
    weights = Weights() if draw(st.booleans()) else Weights(
        unplaced=draw(st.sampled_from((5_000, 1_000_000))), travel_km=draw(st.integers(0, 12)),
        participant_km=draw(st.integers(0, 6)), waiting_day=draw(st.integers(0, 50)),
        overload_hour=draw(st.integers(0, 200)))
    return PlanningProblem(horizon_days=days, meetings=tuple(meetings), facilitators=tuple(facilitators),
                           venues=tuple(venues), weights=weights, slot_minutes=draw(st.sampled_from((60, 60, 30))))


# --------------------------------------------------------------------------------------------------
def brute_force_optimum(problem: PlanningProblem) -> int:
    """The optimal objective by enumerating every placement the checker accepts, meeting by meeting,
    with branch and bound on the per-placement costs (overload is never negative, so they bound)."""
    lone = replace(problem, fixed=())
    no_overload = replace(problem.weights, overload_hour=0, unplaced=0)
    places = [("", "")] + [(v.venue_id, r.room_id) for v in problem.venues for r in v.rooms]
    ids = [f.facilitator_id for f in problem.facilitators]
    options: list[list[tuple[int, Placement]]] = []
    for m in problem.meetings:
        mine = []
        for start in range(0, problem.horizon_days * DAY, problem.slot_minutes):
            if start < m.earliest or start + m.duration > m.latest:
                continue
            for venue_id, room_id in places:
                for team in itertools.combinations(ids, m.facilitators_needed):
                    p = Placement(m.meeting_id, start, team, venue_id, room_id)
                    if checker.violations(lone, [p]) == []:
                        cost = checker.objective(replace(lone, meetings=(m,), weights=no_overload), [p])
                        mine.append((cost, p))
        options.append(sorted(mine, key=lambda x: x[0]))
    unplaced = problem.weights.unplaced
    cheapest = [min([unplaced] + [c for c, _ in opts]) for opts in options]
    best = [checker.objective(problem, [])]

    def search(i: int, chosen: list[Placement], partial: int) -> None:
        if partial + sum(cheapest[i:]) >= best[0]:
            return
        if i == len(options):
            best[0] = min(best[0], checker.objective(problem, chosen))
            return
        for cost, p in options[i]:
            if checker.violations(lone, chosen + [p]) == []:
                search(i + 1, chosen + [p], partial + cost)
        search(i + 1, chosen, partial + unplaced)

    search(0, [], 0)
    return best[0]


def _assert_sound(problem: PlanningProblem, plan) -> None:
    assert checker.violations(problem, plan.placements) == []
    assert plan.report.objective == checker.objective(problem, plan.placements)
    assert plan.report.placed == len(plan.placements)
    assert plan.report.best_bound <= plan.report.objective
    placed = {p.meeting_id for p in plan.placements}
    assert {u.meeting_id for u in plan.unplaced} == {m.meeting_id for m in problem.meetings} - placed
    assert all(u.reasons for u in plan.unplaced)


@PROPERTY
@given(instances())
def test_cp_sat_matches_brute_force_and_beats_greedy(problem):
    greedy = allocation.greedy(problem)
    best = allocation.optimise(problem, time_limit=10.0)
    _assert_sound(problem, greedy)
    _assert_sound(problem, best)
    assert best.report.placed >= greedy.report.placed
    assert best.report.objective <= greedy.report.objective
    optimum = brute_force_optimum(problem)
    assert greedy.report.objective >= optimum
    assert best.report.best_bound <= optimum
    assert allocation.lp_lower_bound(problem) <= optimum + 1e-6
    if best.report.status == "OPTIMAL":
        assert best.report.objective == optimum


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_meetings=9, max_facilitators=5, max_venues=3, days=3))
def test_larger_random_instances_stay_sound(problem):
    greedy = allocation.greedy(problem)
    best = allocation.optimise(problem, time_limit=3.0)
    _assert_sound(problem, greedy)
    _assert_sound(problem, best)
    assert best.report.placed >= greedy.report.placed
    assert best.report.objective <= greedy.report.objective
    assert allocation.lp_lower_bound(problem) <= best.report.objective + 1e-6


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_meetings=7, max_facilitators=5, max_venues=3, days=3))
def test_the_model_objective_is_exactly_the_plan_cost(problem):
    """The CP-SAT model's own objective value equals the cost of the placements it returns, so its
    bound is a bound on that cost and OPTIMAL means optimal for the checker's objective."""
    instance = Instance(problem)
    candidates = [instance.candidates(m) for m in problem.meetings]
    for county in {m.county for m in problem.meetings}:
        mine = [c for c in candidates if c.meeting.county == county and c.possible]
        if not mine:
            continue
        model = CountyModel(instance, mine, [f.facilitator_id for f in problem.facilitators if f.county == county])
        result = model.solve(3.0, 2, 0)
        assert result.status in ("OPTIMAL", "FEASIBLE")
        assert result.objective == model.hint_objective(result.placements)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_meetings=7, max_facilitators=5, max_venues=3, days=3), st.integers(0, 100))
def test_replanning_one_meeting_keeps_the_others(problem, pick):
    plan = allocation.optimise(problem, time_limit=3.0)
    if not plan.placements:
        return
    target = plan.placements[pick % len(plan.placements)]
    again = allocation.replan(problem, plan.placements, target.meeting_id, time_limit=2.0)
    others = {p for p in plan.placements if p.meeting_id != target.meeting_id}
    assert others <= set(again.placements)
    assert len(again.placements) - len(others) <= 1
    assert checker.violations(problem, again.placements) == []
    assert again.report.objective == checker.objective(problem, again.placements)
    # Its old placement is still possible, so re-planning never makes the plan worse.
    assert again.report.objective <= plan.report.objective
    assert again.report.best_bound <= again.report.objective
