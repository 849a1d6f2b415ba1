"""Properties of greedy, CP-SAT, the LP bound and re-planning on random small instances, and a
brute-force enumerator (written here from the checker alone) that finds the true optimum of tiny
ones: CP-SAT must match it whenever it says OPTIMAL, and no bound may exceed it."""
from __future__ import annotations

import itertools
import random
import time
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocation_examples import DAY, HOUR, at
from mend_scheduling.domain import allocation, checker
from mend_scheduling.domain.candidates import Instance
from mend_scheduling.domain.cpsat import CountyModel
from mend_scheduling.domain.greedy import greedy_placements
from mend_scheduling.domain.lns import CountySearch
from mend_scheduling.domain.planning import (
    Busy, FacilitatorSpec, MeetingSpec, Placement, PlanningProblem, Point, RoomSpec, VenueSpec, Weights, Window,
)

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPANS = ((9, 13), (10, 12), (13, 17), (9, 17))


def rarely(draw, n: int) -> bool:
    """True about once in n + 1 draws, and False when hypothesis shrinks (it shrinks towards 0)."""
    return draw(st.integers(0, n)) == n


def _point(draw) -> Point:
    return Point(51.5 + draw(st.integers(0, 30)) / 100, -3.0 + draw(st.integers(0, 30)) / 100)


@st.composite
def instances(draw, max_meetings: int = 4, max_facilitators: int = 4, max_venues: int = 3, days: int = 2):
    counties = ["gwent", "powys"] if rarely(draw, 4) else ["gwent"]
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
            training_level=draw(st.sampled_from(("practitioner", "advanced", "practitioner", "foundation"))),
            vetting_expires_day=draw(st.sampled_from((400, 400, 400, 400, 0, -1))),
            max_minutes_per_week=draw(st.sampled_from((600, 240, 120, 60))), availability=tuple(windows), busy=busy,
            languages=frozenset({"en", "cy"}) if rarely(draw, 3) else frozenset({"en"}),
            accreditations=frozenset({"sexual_harm"}) if rarely(draw, 3) else frozenset(),
            conflicts=frozenset({"p-0"}) if rarely(draw, 5) else frozenset(),
            districts=frozenset({"north"}) if rarely(draw, 7) else frozenset(),
            active=not rarely(draw, 19)))
    venues = []
    for i in range(draw(st.integers(1, max_venues))):
        opening = []
        for day in range(days):
            span = draw(st.sampled_from(((8, 13), (9, 17), (12, 21), (8, 21))))
            opening.append(Window(at(day, span[0]), at(day, span[1])))
        rooms = []
        for r in range(draw(st.integers(1, 2))):
            room_busy = ()
            if rarely(draw, 3):
                day, hour = draw(st.integers(0, days - 1)), draw(st.integers(9, 15))
                room_busy = (Busy(at(day, hour), at(day, hour) + 60),)
            rooms.append(RoomSpec(f"v-{i}-r{r}", draw(st.sampled_from((3, 4, 8))), room_busy))
        venues.append(VenueSpec(
            venue_id=f"v-{i}", county=draw(st.sampled_from(counties)),
            kind="prison" if rarely(draw, 7) else "community_room", location=_point(draw),
            rooms=tuple(rooms), opening=tuple(opening), neutral=not rarely(draw, 3),
            separate_waiting_rooms=not rarely(draw, 3),
            accessibility=frozenset() if rarely(draw, 2) else frozenset({"step_free"})))
    prisons = [v.venue_id for v in venues if v.kind == "prison"]
    meetings = []
    for i in range(draw(st.integers(1, max_meetings))):
        duration = draw(st.sampled_from((60, 120)))
        first_day = draw(st.integers(0, days - 1))
        earliest = at(first_day, draw(st.sampled_from((9, 11, 9, 0))))
        latest = min(days * DAY, earliest + draw(st.sampled_from((DAY, 8 * HOUR, 2 * DAY, 5 * HOUR))))
        pinned = ()
        if rarely(draw, 4):
            pinned = (draw(st.sampled_from([f.facilitator_id for f in facilitators])),)
        meetings.append(MeetingSpec(
            meeting_id=f"m-{i}", case_id=f"case-{i % 2}", county=draw(st.sampled_from(counties)), kind="conference",
            duration=duration, earliest=earliest, latest=latest, facilitators_needed=draw(st.sampled_from((1, 1, 1, 2))),
            min_training_level=draw(st.sampled_from(("foundation", "foundation", "foundation", "practitioner", "advanced"))),
            languages=frozenset({"cy"}) if rarely(draw, 7) else frozenset(),
            accessibility=frozenset({"step_free"}) if rarely(draw, 3) else frozenset(),
            separate_waiting=rarely(draw, 4),
            prison_venue_id=draw(st.sampled_from(prisons)) if prisons and rarely(draw, 3) else "",
            attendees=draw(st.integers(0, 3)), persons=frozenset({f"p-{i}"}), pinned_facilitators=pinned,
            required_accreditations=frozenset({"sexual_harm"}) if rarely(draw, 9) else frozenset(),
            home=_point(draw) if rarely(draw, 3) else None,
            near=None if rarely(draw, 1) else _point(draw),
            district=draw(st.sampled_from(("", "", "north", "south"))), neutral_venue=rarely(draw, 4)))
    weights = Weights() if draw(st.booleans()) else Weights(
        unplaced=draw(st.sampled_from((5_000, 1_000_000))), travel_km=draw(st.integers(0, 12)),
        participant_km=draw(st.integers(0, 6)), waiting_day=draw(st.integers(0, 50)),
        overload_hour=draw(st.integers(0, 200)))
    return PlanningProblem(horizon_days=days, meetings=tuple(meetings), facilitators=tuple(facilitators),
                           venues=tuple(venues), weights=weights, slot_minutes=draw(st.sampled_from((60, 60, 30))))


def random_instance(seed: int, max_meetings: int = 4, max_facilitators: int = 4, max_venues: int = 3,
                    days: int = 2) -> PlanningProblem:
    """A plausible instance from a seed: hypothesis draws edge cases far more often than they occur
    (every rule biting at once), so this one keeps most meetings placeable and the search busy."""
    rng = random.Random(seed)

    def point() -> Point:
        return Point(51.5 + rng.randint(0, 30) / 100, -3.0 + rng.randint(0, 30) / 100)

    facilitators = []
    for i in range(rng.randint(min(2, max_facilitators), max_facilitators)):
        windows = [Window(at(day, a), at(day, b)) for day in range(days)
                   for a, b in [rng.choice(SPANS + ((9, 17),) * 3)] if rng.random() < 0.9]
        busy = ()
        if rng.random() < 0.3:
            start = at(rng.randrange(days), rng.randint(9, 15))
            busy = (Busy(start, start + rng.choice((60, 120)), counts_as_work=rng.random() < 0.5),)
        facilitators.append(FacilitatorSpec(
            facilitator_id=f"f-{i}", county="gwent", kind="staff", home=point(),
            training_level=rng.choice(("foundation", "practitioner", "practitioner", "advanced")),
            vetting_expires_day=rng.choice((400,) * 12 + (0, -1)),
            max_minutes_per_week=rng.choice((120, 240, 600, 600)), availability=tuple(windows), busy=busy,
            languages=frozenset({"en", "cy"}) if rng.random() < 0.4 else frozenset({"en"}),
            conflicts=frozenset({"p-0"}) if rng.random() < 0.1 else frozenset(),
            districts=frozenset({"north"}) if rng.random() < 0.1 else frozenset()))
    venues = []
    for i in range(rng.randint(1, max_venues)):
        rooms = []
        for r in range(rng.randint(1, 2)):
            room_busy = ()
            if rng.random() < 0.3:
                start = at(rng.randrange(days), rng.randint(9, 15))
                room_busy = (Busy(start, start + 60),)
            rooms.append(RoomSpec(f"v-{i}-r{r}", rng.choice((4, 8, 8)), room_busy))
        venues.append(VenueSpec(
            venue_id=f"v-{i}", county="gwent", kind="prison" if rng.random() < 0.1 else "community_room",
            location=point(), rooms=tuple(rooms),
            opening=tuple(Window(at(day, 8), at(day, rng.choice((13, 17, 21, 21)))) for day in range(days)),
            neutral=rng.random() < 0.8, separate_waiting_rooms=rng.random() < 0.7,
            accessibility=frozenset({"step_free"}) if rng.random() < 0.7 else frozenset()))
    prisons = [v.venue_id for v in venues if v.kind == "prison"]
    meetings = []
    for i in range(rng.randint(1, max_meetings)):
        earliest = at(rng.randrange(days), rng.choice((0, 9, 9, 11)))
        meetings.append(MeetingSpec(
            meeting_id=f"m-{i}", case_id=f"case-{i % 2}", county="gwent", kind="conference",
            duration=rng.choice((60, 60, 120)), earliest=earliest,
            latest=min(days * DAY, earliest + rng.choice((8 * HOUR, DAY, DAY, 2 * DAY))),
            facilitators_needed=rng.choice((1, 1, 1, 2)),
            min_training_level=rng.choice(("foundation", "foundation", "practitioner")),
            languages=frozenset({"cy"}) if rng.random() < 0.1 else frozenset(),
            accessibility=frozenset({"step_free"}) if rng.random() < 0.2 else frozenset(),
            separate_waiting=rng.random() < 0.2,
            prison_venue_id=rng.choice(prisons) if prisons and rng.random() < 0.3 else "",
            attendees=rng.randint(1, 3), persons=frozenset({f"p-{i}"}),
            pinned_facilitators=(rng.choice(facilitators).facilitator_id,) if rng.random() < 0.1 else (),
            home=point() if rng.random() < 0.25 else None, near=point() if rng.random() < 0.7 else None,
            district=rng.choice(("", "", "north")), neutral_venue=rng.random() < 0.2))
    weights = Weights() if rng.random() < 0.5 else Weights(
        unplaced=rng.choice((5_000, 1_000_000)), travel_km=rng.randint(0, 12), participant_km=rng.randint(0, 6),
        waiting_day=rng.randint(0, 50), overload_hour=rng.randint(0, 200))
    return PlanningProblem(horizon_days=days, meetings=tuple(meetings), facilitators=tuple(facilitators),
                           venues=tuple(venues), weights=weights, slot_minutes=rng.choice((60, 60, 30)))


def problems(**size):
    """Hypothesis' own edge cases and plausible seeded instances, half and half."""
    return st.one_of(st.builds(lambda seed: random_instance(seed, **size), st.integers(0, 2**31)), instances(**size))


# --------------------------------------------------------------------------------------------------
def brute_force_optimum(problem: PlanningProblem, budget: int = 200_000) -> int | None:
    """The optimal objective by enumerating every placement the checker accepts on its own, then
    every combination of them (or leaving meetings out) that neither double-books a facilitator or a
    room nor goes over anyone's weekly hours, with branch and bound on the per-placement costs
    (overload is never negative, so they are a bound). None if it needs more than `budget` steps."""
    lone = replace(problem, fixed=())
    no_overload = replace(problem.weights, overload_hour=0, unplaced=0)
    places = [("", "")] + [(v.venue_id, r.room_id) for v in problem.venues for r in v.rooms]
    ids = [f.facilitator_id for f in problem.facilitators]
    limit = {f.facilitator_id: f.max_minutes_per_week for f in problem.facilitators}
    work = {(f.facilitator_id, b.start // (7 * DAY)): 0 for f in problem.facilitators for b in f.busy}
    for f in problem.facilitators:
        for b in f.busy:
            if b.counts_as_work:
                work[(f.facilitator_id, b.start // (7 * DAY))] += b.end - b.start
    duration = {m.meeting_id: m.duration for m in problem.meetings}
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

    def fits(p: Placement, chosen: list[Placement]) -> bool:
        end = p.start + duration[p.meeting_id]
        week = p.start // (7 * DAY)
        for q in chosen:
            if q.start < end and p.start < q.start + duration[q.meeting_id]:
                if set(q.facilitator_ids) & set(p.facilitator_ids) or (p.room_id and p.room_id == q.room_id):
                    return False
        for fid in p.facilitator_ids:
            minutes = work.get((fid, week), 0) + duration[p.meeting_id] + sum(
                duration[q.meeting_id] for q in chosen if fid in q.facilitator_ids and q.start // (7 * DAY) == week)
            if minutes > limit[fid]:
                return False
        return True

    unplaced = problem.weights.unplaced
    cheapest = [min([unplaced] + [c for c, _ in opts]) for opts in options]
    best: list = [checker.objective(problem, []), []]
    steps = [0]
    shares = checker.even_shares(problem)
    rate = problem.weights.overload_hour

    def total(chosen: list[Placement], partial: int) -> int:
        """partial (per-placement costs and meetings left out) plus overload, as the checker documents it."""
        load: dict[str, int] = {}
        for q in chosen:
            for fid in q.facilitator_ids:
                load[fid] = load.get(fid, 0) + duration[q.meeting_id]
        return partial + sum(rate * max(0, minutes - shares[fid]) // 60 for fid, minutes in load.items())

    def search(i: int, chosen: list[Placement], partial: int) -> None:
        if partial + sum(cheapest[i:]) >= best[0]:
            return
        if i == len(options):
            value = total(chosen, partial)
            if value < best[0]:
                best[:] = [value, chosen]
            return
        for cost, p in options[i]:
            steps[0] += 1
            if steps[0] > budget:
                raise TimeoutError
            if partial + cost + sum(cheapest[i + 1:]) >= best[0]:
                break   # options are in cost order
            if fits(p, chosen):
                search(i + 1, chosen + [p], partial + cost)
        search(i + 1, chosen, partial + unplaced)

    try:
        search(0, [], 0)
    except TimeoutError:
        return None
    # The enumerator's own sums must agree with the checker on the plan it found.
    assert checker.violations(lone, best[1]) == []
    assert checker.objective(problem, best[1]) == best[0]
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
@given(problems())
def test_cp_sat_matches_brute_force_and_beats_greedy(problem):
    greedy = allocation.greedy(problem)
    best = allocation.optimise(problem, time_limit=10.0)
    _assert_sound(problem, greedy)
    _assert_sound(problem, best)
    assert best.report.placed >= greedy.report.placed
    assert best.report.objective <= greedy.report.objective
    optimum = brute_force_optimum(problem)
    if optimum is None:     # too many combinations to enumerate in a unit test
        return
    assert greedy.report.objective >= optimum
    assert best.report.best_bound <= optimum
    assert allocation.lp_lower_bound(problem) <= optimum + 1e-6
    if best.report.status == "OPTIMAL":
        assert best.report.objective == optimum


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(max_meetings=9, max_facilitators=5, max_venues=3, days=3))
def test_larger_random_instances_stay_sound(problem):
    greedy = allocation.greedy(problem)
    best = allocation.optimise(problem, time_limit=3.0)
    _assert_sound(problem, greedy)
    _assert_sound(problem, best)
    assert best.report.placed >= greedy.report.placed
    assert best.report.objective <= greedy.report.objective
    assert allocation.lp_lower_bound(problem) <= best.report.objective + 1e-6


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(max_meetings=7, max_facilitators=5, max_venues=3, days=3), st.booleans())
def test_the_model_objective_is_exactly_the_plan_cost(problem, tight):
    """The CP-SAT model's own objective value (lean or tight formulation) equals the cost of the
    placements it returns, so its bound is a bound on that cost and OPTIMAL means optimal for the
    checker's objective."""
    instance = Instance(problem)
    candidates = [instance.candidates(m) for m in problem.meetings]
    for county in {m.county for m in problem.meetings}:
        mine = [c for c in candidates if c.meeting.county == county and c.possible]
        if not mine:
            continue
        model = CountyModel(instance, mine, [f.facilitator_id for f in problem.facilitators if f.county == county],
                            tight=tight)
        result = model.solve(3.0, 2, 0)
        assert result.status in ("OPTIMAL", "FEASIBLE")
        assert result.objective == model.objective_of(result.placements)
        assert checker.violations(problem, result.placements) == []


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31), st.booleans())
def test_neighbourhood_search_only_improves_and_stays_valid(seed, tight):
    problem = random_instance(seed, max_meetings=12, max_facilitators=5, max_venues=3, days=3)
    instance = Instance(problem)
    candidates = [instance.candidates(m) for m in problem.meetings]
    start, _ = greedy_placements(instance, candidates)
    search = CountySearch(instance, candidates, [f.facilitator_id for f in problem.facilitators], start,
                          workers=2, seed=seed, tight=tight)
    search.size = 3.0                       # small neighbourhoods, so they do not cover the instance
    improved = search.run(time.perf_counter() + 0.8)
    assert checker.violations(problem, improved) == []
    assert checker.objective(problem, improved) <= checker.objective(problem, start)
    assert search.stats.iterations > 0 or not any(c.possible for c in candidates)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(max_meetings=7, max_facilitators=5, max_venues=3, days=3), st.integers(0, 100))
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
