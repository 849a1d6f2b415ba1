"""Allocation: which facilitators meet whom, when and where. The public face of the optimiser.

    greedy(problem)                      the baseline: most urgent meeting first, cheapest free option
    optimise(problem, time_limit=60)     CP-SAT, warm-started from greedy, one county at a time
    replan(problem, current, meeting_id) re-place one meeting, every other placement unchanged
    lp_lower_bound(problem)              an LP (GLOP) bound on the optimum, to judge any plan by

All of them search the same feasible set: the candidate sets of `candidates` drop only options
that break a rule by themselves, so nothing feasible is pruned and the bounds are true bounds. The
objective is the one defined in `checker` (placing a meeting outweighs everything else; then
facilitators' and participants' travel, waiting and overload above an even share of the work).

How `optimise` spends its time:
- candidate sets for every meeting, then the greedy plan (the warm start and the fallback);
- counties one at a time, smallest first, which is exact: facilitators, venues and meetings each
  belong to one county and the objective is a sum of per-county parts (weeks are not split: weekly
  hours and overload tie them together). The time is shared out by meetings still to solve, and time
  a county does not use passes to the next;
- per county, CP-SAT on the whole county model with the greedy plan as a complete hint: alone for
  small counties (the tight formulation proves them optimal in seconds), for a share of the time
  in larger ones, followed by large-neighbourhood search (`lns`) from the best plan so far;
- a county whose search ends worse than its greedy placements keeps those, so the plan is never
  worse than greedy's; the bound is the sum of CP-SAT's county bounds.

Every plan's report carries the status, the objective (equal to `checker.objective` of its
placements), the best bound, the gap, the run time and the time to the first feasible plan, and
every meeting left out comes with sentences saying why.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Sequence

from .candidates import Instance, MeetingCandidates, taken_reason
from .cpsat import CountyModel
from .greedy import greedy_placements
from .lns import CountySearch
from .lower_bound import lp_lower_bound as _lp_lower_bound
from .planning import Placement, Plan, PlanningProblem, SolveReport, Unplaced

__all__ = ["greedy", "optimise", "replan", "lp_lower_bound"]

log = logging.getLogger(__name__)

# Share of the time limit kept back for reading the solution and checking it against greedy.
_RESERVE = 0.03


def _whole_model_plan(meetings: int) -> tuple[bool, float]:
    """(tight formulation?, share of the county's time) for CP-SAT on the whole county model; the
    rest of the time goes to neighbourhood search. Small counties: CP-SAT finds the optimum quickly
    and needs the time to prove it, which the tight model does in seconds. Large ones: the lean model
    searches better, LNS improves faster than either, and the tight model's bound costs too much
    to build and solve. Thresholds measured on the benchmark instances (50, 200 and 500 meetings)."""
    if meetings <= 60:
        return True, 1.0
    if meetings <= 150:
        return True, 0.4
    return False, 0.2


def _gap(objective: float, bound: float) -> float:
    return max(0.0, (objective - bound) / max(1.0, abs(objective)))


def _unplaced(left_out: Sequence[MeetingCandidates]) -> tuple[Unplaced, ...]:
    out = []
    for c in left_out:
        reasons = tuple(c.reasons) if not c.possible else (taken_reason(c),)
        out.append(Unplaced(c.meeting.meeting_id, reasons))
    return tuple(sorted(out, key=lambda u: u.meeting_id))


def _in_meeting_order(problem: PlanningProblem, placements: Sequence[Placement]) -> tuple[Placement, ...]:
    rank = {m.meeting_id: i for i, m in enumerate(problem.meetings)}
    return tuple(sorted(placements, key=lambda p: (rank.get(p.meeting_id, len(rank)), p.meeting_id)))


def _setup(problem: PlanningProblem, fixed: Sequence[Placement] = ()) -> tuple[Instance, list[MeetingCandidates]]:
    instance = Instance(problem, fixed)
    candidates = [instance.candidates(m) for m in problem.meetings if m.meeting_id not in instance.fixed]
    return instance, candidates


def _floor_cost(instance: Instance, candidates: Sequence[MeetingCandidates]) -> int:
    """What no plan can avoid: meetings with no option at all and the fixed placements' own cost.
    It is greedy's (trivial) bound."""
    unavoidable = instance.weights.unplaced * sum(1 for c in candidates if not c.possible)
    unavoidable += sum(instance.placement_points(p) for p in instance.fixed.values() if p.meeting_id in instance.meetings)
    return unavoidable


# --------------------------------------------------------------------------------------------------
def greedy(problem: PlanningProblem) -> Plan:
    """The baseline plan: meetings by (end of window, fewest options), each taking its cheapest
    option still free. Its bound is only the cost no plan can avoid."""
    started = time.perf_counter()
    instance, candidates = _setup(problem)
    placed, left_out = greedy_placements(instance, candidates)
    placements = list(instance.fixed.values()) + placed
    seconds = time.perf_counter() - started
    objective = instance.cost(placements)
    bound = _floor_cost(instance, candidates)
    report = SolveReport(method="greedy", status="GREEDY", objective=objective, best_bound=bound,
                         gap=_gap(objective, bound), seconds=seconds, seconds_to_first_feasible=seconds,
                         placed=len(placements), meetings=len(problem.meetings))
    return Plan(_in_meeting_order(problem, placements), _unplaced(left_out), report)


def optimise(problem: PlanningProblem, *, time_limit: float = 60.0, workers: int = 2, seed: int = 0,
             log_search: bool = False) -> Plan:
    """The CP-SAT plan, never worse than greedy's: each county's model starts from the greedy plan
    as a complete hint, and a county whose search ends worse than that hint (or with nothing) keeps
    the greedy placements (`method` then says so). It never places fewer meetings than greedy as long
    as `weights.unplaced` outweighs all other costs together, as `Weights` intends; with weights that
    do not, the lower objective wins.

    Report: objective is the plan's cost; best_bound the counties' CP-SAT bounds plus the costs no
    plan can change; status OPTIMAL only if every county was proved optimal; seconds_to_first_feasible
    is the set-up (candidate sets, greedy, models) plus each county's time to its first solution, i.e.
    what a run that stopped every county at its first solution would take."""
    started = time.perf_counter()
    instance, candidates = _setup(problem)
    greedy_new, greedy_left = greedy_placements(instance, candidates)
    fixed = list(instance.fixed.values())
    greedy_cost = instance.cost(fixed + greedy_new)
    deadline = started + time_limit * (1 - _RESERVE)
    outcome = _solve_counties(instance, candidates, greedy_new, deadline, workers, seed, log_search)

    placements = fixed + outcome.placements
    objective = instance.cost(placements)
    # Costs outside the county models (fixed placements, meetings with no option) are constants.
    bound = outcome.bound + (objective - outcome.model_objective)
    placed_ids = {p.meeting_id for p in outcome.placements}
    left_out = [c for c in candidates if c.meeting.meeting_id not in placed_ids]
    fell_back = outcome.fell_back
    if objective > greedy_cost:
        # Cannot happen while every county keeps the better of its search and its hint; a guard.
        fell_back = True
        placements, objective, left_out = fixed + greedy_new, greedy_cost, greedy_left
        bound = min(bound, objective)
    seconds = time.perf_counter() - started
    status = "OPTIMAL" if outcome.optimal and not fell_back else "FEASIBLE"
    first = min(seconds, seconds - outcome.solver_seconds + outcome.first_solution_seconds)
    report = SolveReport(method="cp-sat+greedy-fallback" if fell_back else "cp-sat", status=status,
                         objective=objective, best_bound=bound, gap=_gap(objective, bound), seconds=seconds,
                         seconds_to_first_feasible=first, placed=len(placements), meetings=len(problem.meetings))
    return Plan(_in_meeting_order(problem, placements), _unplaced(left_out), report)


def _county_cost(instance: Instance, candidates: Sequence[MeetingCandidates], placements: Sequence[Placement],
                 county: str) -> int:
    """The county's share of the objective, as its model would count it (see CountyModel.objective_of)."""
    placed = {p.meeting_id for p in placements}
    total = instance.weights.unplaced * sum(1 for c in candidates if c.meeting.meeting_id not in placed)
    total += sum(instance.placement_points(p) for p in placements)
    load = defaultdict(int, instance.fixed_load)
    for p in placements:
        for fid in p.facilitator_ids:
            load[fid] += instance.meetings[p.meeting_id].duration
    return total + sum(instance.overload_points(f.facilitator_id, load[f.facilitator_id])
                       for f in instance.problem.facilitators if f.county == county)


class _Outcome:
    """What the county solves add up to."""

    def __init__(self) -> None:
        self.placements: list[Placement] = []
        self.model_objective = 0        # sum of the county models' objectives of the chosen placements
        self.bound = 0
        self.optimal = True
        self.fell_back = False
        self.solver_seconds = 0.0
        self.first_solution_seconds = 0.0


def _solve_counties(instance: Instance, candidates: Sequence[MeetingCandidates], hint: Sequence[Placement],
                    deadline: float, workers: int, seed: int, log_search: bool) -> _Outcome:
    by_county: dict[str, list[MeetingCandidates]] = defaultdict(list)
    for c in candidates:
        if c.possible:
            by_county[c.meeting.county].append(c)
    hint_by_county: dict[str, list[Placement]] = defaultdict(list)
    for p in hint:
        hint_by_county[instance.meetings[p.meeting_id].county].append(p)

    outcome = _Outcome()
    # Smallest county first: time it does not need passes to the larger ones.
    counties = sorted(by_county, key=lambda county: (len(by_county[county]), county))
    meetings_left = sum(len(by_county[county]) for county in counties)
    for county in counties:
        county_started = time.perf_counter()
        tight, whole_share = _whole_model_plan(len(by_county[county]))
        # Building a model takes about 5 ms a meeting (8 tight) on the benchmark machine.
        build_seconds = len(by_county[county]) * (0.008 if tight else 0.005)
        if county_started + build_seconds + 0.1 >= deadline:
            # Out of time before this county's model could even be built: it keeps greedy's plan,
            # and its bound is only what no plan avoids (a meeting unplaced costs >= 0).
            outcome.fell_back = True
            outcome.optimal = False
            outcome.placements.extend(hint_by_county[county])
            outcome.model_objective += _county_cost(instance, by_county[county], hint_by_county[county], county)
            log.info("county %s: no time left, greedy placements kept", county)
            continue
        facilitator_ids = [f.facilitator_id for f in instance.problem.facilitators if f.county == county]
        model = CountyModel(instance, by_county[county], facilitator_ids, tight=tight)
        county_hint = hint_by_county[county]
        model.hint(county_hint)
        hint_objective = model.objective_of(county_hint)
        share = len(by_county[county]) / meetings_left
        meetings_left -= len(by_county[county])
        county_deadline = county_started + max(0.1, (deadline - county_started) * share)
        # The whole county model first: it proves small counties optimal and gives the bound.
        budget = max(0.05, (county_deadline - time.perf_counter()) * whole_share)
        result = model.solve(budget, workers, seed, log=log_search)
        outcome.solver_seconds += result.seconds
        outcome.first_solution_seconds += result.seconds_to_first
        solved = result.status in ("OPTIMAL", "FEASIBLE")
        found = model.objective_of(result.placements) if solved else None
        if solved and found != result.objective:   # the model's objective is meant to be exact
            log.warning("county %s: solver objective %s but its placements cost %s", county, result.objective, found)
        if found is None or found > hint_objective:
            best, best_objective = list(county_hint), hint_objective
            if result.status == "INFEASIBLE":
                log.error("county %s: CP-SAT says infeasible although the greedy hint is a solution", county)
        else:
            best, best_objective = result.placements, found
        searched = ""
        if result.status != "OPTIMAL" and county_deadline - time.perf_counter() > 0.3:
            # Then neighbourhoods of the best plan so far for the rest of the county's time.
            search = CountySearch(instance, by_county[county], facilitator_ids, best, workers=workers, seed=seed,
                                  tight=True)
            improved = search.run(county_deadline)
            improved_objective = model.objective_of(improved)
            if improved_objective <= best_objective:
                best, best_objective = improved, improved_objective
            searched = f", LNS {search.stats.iterations} neighbourhoods, {search.stats.improvements} improving"
            outcome.solver_seconds += search.stats.seconds
        if best_objective == hint_objective and (found is None or found > hint_objective):
            outcome.fell_back = True
        outcome.placements.extend(best)
        outcome.model_objective += best_objective
        trusted = result.status in ("OPTIMAL", "FEASIBLE", "UNKNOWN")
        outcome.bound += min(result.bound, best_objective) if trusted else 0
        outcome.optimal &= result.status == "OPTIMAL" or best_objective == result.bound
        log.info("county %s: %s, objective %s (greedy %s), bound %s, %.1f s (first solution %.2f s)%s", county,
                 result.status, best_objective, hint_objective, result.bound, time.perf_counter() - county_started,
                 result.seconds_to_first, searched)
    return outcome


def replan(problem: PlanningProblem, current: Sequence[Placement], meeting_id: str, *,
           time_limit: float = 2.0) -> Plan:
    """Re-place `meeting_id` (say after a participant cancelled) with every other placement of
    `current` kept exactly as it is. The plan lists all placements: the unchanged ones and the new
    one; if the meeting cannot be placed, `unplaced` says why. Meetings absent from `current` stay
    unplaced."""
    started = time.perf_counter()
    meetings = {m.meeting_id: m for m in problem.meetings}
    if meeting_id not in meetings:
        raise ValueError(f"unknown meeting {meeting_id}")
    if any(p.meeting_id == meeting_id for p in problem.fixed):
        raise ValueError(f"meeting {meeting_id} is fixed in the problem and cannot be re-planned")
    others = [p for p in current if p.meeting_id != meeting_id]
    instance = Instance(problem, others)
    c = instance.candidates(meetings[meeting_id])
    fixed = list(instance.fixed.values())
    hint, _ = greedy_placements(instance, [c])
    new: list[Placement] = list(hint)
    status, bound_part, model_part, first = "OPTIMAL", 0, 0, time.perf_counter() - started
    if c.possible:
        model = CountyModel(instance, [c], [f.facilitator_id for f in problem.facilitators if f.county == c.meeting.county],
                            tight=True)
        model.hint(hint)
        hint_objective = model.objective_of(hint)
        budget = max(0.05, time_limit * (1 - _RESERVE) - (time.perf_counter() - started))
        result = model.solve(budget, 1, 0)
        first = time.perf_counter() - started - result.seconds + result.seconds_to_first
        if result.status in ("OPTIMAL", "FEASIBLE") and model.objective_of(result.placements) <= hint_objective:
            new = result.placements
            status = result.status
        else:
            status = "FEASIBLE"
        model_part = model.objective_of(new)
        bound_part = min(result.bound, model_part) if result.status != "MODEL_INVALID" else 0
    placements = fixed + new
    objective = instance.cost(placements)
    bound = bound_part + (objective - model_part)
    unplaced: list[Unplaced] = []
    if not new:
        unplaced.append(Unplaced(meeting_id, tuple(c.reasons) if not c.possible else (taken_reason(c),)))
    placed_ids = {p.meeting_id for p in placements}
    for m in problem.meetings:
        if m.meeting_id not in placed_ids and m.meeting_id != meeting_id:
            unplaced.append(Unplaced(m.meeting_id, (f"it is not placed in the current plan (re-planning moved only {meeting_id})",)))
    seconds = time.perf_counter() - started
    report = SolveReport(method="cp-sat", status=status, objective=objective, best_bound=bound,
                         gap=_gap(objective, bound), seconds=seconds, seconds_to_first_feasible=min(first, seconds),
                         placed=len(placements), meetings=len(problem.meetings))
    return Plan(_in_meeting_order(problem, placements), tuple(sorted(unplaced, key=lambda u: u.meeting_id)), report)


def lp_lower_bound(problem: PlanningProblem) -> float:
    """A lower bound on the optimal objective from an LP relaxation solved by GLOP; see
    `lower_bound` for what is relaxed. It holds over the full feasible set (no heuristic pruning)."""
    return _lp_lower_bound(problem)
