"""A lower bound on the optimal objective: the LP relaxation (GLOP) of an aggregated model.

Valid because every step only relaxes the exact problem over the exact candidate sets (which drop
nothing feasible, see `candidates`), and a minimisation's relaxation can only cost less:

- a meeting's start is replaced by fractional (day, place) choices `x[m, day, place]`, and its
  facilitators by fractional `on[m, f, period]` (f works it that day, or that week in large
  counties) and `at[m, f, place]` (f works it at that place), linked so that each period and each
  place gets exactly `needed` facilitators, a facilitator only in periods and at places it can share
  a start with, pinned facilitators fully, and each language at least one speaker;
- no-overlap becomes capacity: per facilitator and day (when periods are days), minutes of meetings
  starting that day <= the minutes of that day's availability windows left after busy time (see
  `candidates.usable_minutes`); per venue and day, minutes <= the rooms' open minutes left after
  bookings, likewise;
- weekly hours stay as they are; overload keeps its max(0, load - share) and its floor(./60) is
  relaxed to >= (overload_hour x overload - 59) / 60.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np
from ortools.linear_solver import pywraplp

from .candidates import HOME, Instance, MeetingCandidates, usable_minutes
from .planning import MINUTES_PER_DAY, MINUTES_PER_WEEK, PlanningProblem


# Counties up to this many meetings get facilitators' work per day (capacity per day, and the day's
# places they can reach); larger ones per week, which solves about 2.5 times faster at 500 meetings
# for a bound lower by about 0.01 % (measured on the benchmark instances).
_DAILY_UP_TO = 100


def _day_runs(c: MeetingCandidates) -> tuple[np.ndarray, np.ndarray]:
    """Distinct start days of a meeting and the index where each day's starts begin."""
    days = c.starts // MINUTES_PER_DAY
    values, first = np.unique(days, return_index=True)
    return values, first


def lp_lower_bound(problem: PlanningProblem) -> float:
    """The LP bound of the whole problem (fixed placements as they are)."""
    instance = Instance(problem)
    candidates = [instance.candidates(m) for m in problem.meetings if m.meeting_id not in instance.fixed]
    return lower_bound(instance, candidates)


def lower_bound(instance: Instance, candidates: Sequence[MeetingCandidates]) -> float:
    """The LP bound of the objective restricted to the meetings of `candidates` (the fixed
    placements' own costs included); with every unfixed meeting's candidates, of the whole."""
    solver = pywraplp.Solver.CreateSolver("GLOP")
    weights = instance.weights
    inf = solver.infinity()
    constant = weights.unplaced * sum(1 for c in candidates if not c.possible)
    constant += sum(instance.placement_points(p) for p in instance.fixed.values() if p.meeting_id in instance.meetings)
    objective = solver.Objective()

    staff_day: dict[tuple[str, int], list] = defaultdict(list)      # (f, day) -> [(minutes, var)]
    staff_week: dict[tuple[str, int], list] = defaultdict(list)
    venue_day: dict[tuple[str, int], list] = defaultdict(list)
    load: dict[str, list] = defaultdict(list)

    county_size: dict[str, int] = defaultdict(int)
    for c in candidates:
        county_size[c.meeting.county] += c.possible

    for c in candidates:
        if not c.possible:
            continue
        m = c.meeting
        needed = m.facilitators_needed
        days, first = _day_runs(c)
        places = c.venues()
        if c.home:
            open_by_place = {HOME: np.ones(len(c.starts), dtype=bool)}
        else:
            open_by_place = {}
            for r in c.rooms:
                open_by_place[r.venue_id] = open_by_place.get(r.venue_id, np.zeros(len(c.starts), dtype=bool)) | r.allowed
        # x[day, place], with its sums per day, per place and in all as variables of their own, so
        # the many constraints on them each name one variable (GLOP is much faster with fewer entries).
        x: dict[tuple[int, str], pywraplp.Variable] = {}
        open_days: dict[str, np.ndarray] = {}
        for place in places:
            open_days[place] = np.logical_or.reduceat(open_by_place[place], first)
            for k, day in enumerate(days.tolist()):
                if not open_days[place][k]:
                    continue
                var = solver.NumVar(0, 1, "")
                x[(day, place)] = var
                waiting = weights.waiting_day * (day - m.earliest // MINUTES_PER_DAY)
                # U x (1 - placed) = U - U x sum(x)
                objective.SetCoefficient(var, waiting + c.place_cost[place] - weights.unplaced)
                if place != HOME:
                    venue_day[(place, day)].append((m.duration, var))
        constant += weights.unplaced

        def total_of(terms: list, name: str) -> pywraplp.Variable:
            var = solver.NumVar(0, 1, name)
            con = solver.Constraint(0, 0)
            con.SetCoefficient(var, -1)
            for t in terms:
                con.SetCoefficient(t, 1)
            return var

        placed = total_of(list(x.values()), "placed")
        on_day = {day: total_of([v for (d, _), v in x.items() if d == day], "") for day in days.tolist()}
        at_place = {place: total_of([v for (_, pl), v in x.items() if pl == place], "") for place in places}

        # on[f, period]: f works it in that period (a day, or a week in large counties) at a place
        # where f and a room share a start; at[f, place]: f works it at that place.
        daily = county_size[m.county] <= _DAILY_UP_TO
        period_of = (lambda day: day) if daily else (lambda day: day * MINUTES_PER_DAY // MINUTES_PER_WEEK)
        on: dict[tuple[str, int], pywraplp.Variable] = {}
        period_teams: dict[int, pywraplp.Constraint] = {}
        for day, total in on_day.items():
            if period_of(day) not in period_teams:
                period_teams[period_of(day)] = solver.Constraint(0, 0)
            period_teams[period_of(day)].SetCoefficient(total, -needed)
        place_teams = {}
        for place, total in at_place.items():
            place_teams[place] = solver.Constraint(0, 0)
            place_teams[place].SetCoefficient(total, -needed)
        for f in c.facilitators:
            fid = f.facilitator_id
            joint = {place: f.allowed & open_by_place[place] for place in places}
            joint_days = {place: np.logical_or.reduceat(mask, first) for place, mask in joint.items()}
            fitting_x: dict[int, list] = defaultdict(list)       # period -> x variables f could be on
            for k, day in enumerate(days.tolist()):
                fitting = [place for place in places if joint_days[place][k]]
                if not fitting:
                    continue
                if len(fitting) == sum(1 for place in places if open_days[place][k]):
                    fitting_x[period_of(day)].append(on_day[day])
                else:
                    fitting_x[period_of(day)].extend(x[(day, place)] for place in fitting)
            total_on = []
            for period, xs in fitting_x.items():
                var = solver.NumVar(0, 1, "")
                on[(fid, period)] = var
                total_on.append(var)
                period_teams[period].SetCoefficient(var, 1)
                limit = solver.Constraint(-inf, 0)      # on[f, period] <= x[period, fitting places]
                limit.SetCoefficient(var, 1)
                for xv in xs:
                    limit.SetCoefficient(xv, -1)
                if daily:
                    staff_day[(fid, period)].append((m.duration, var))
                week = period * MINUTES_PER_DAY // MINUTES_PER_WEEK if daily else period
                staff_week[(fid, week)].append((m.duration, var))
                load[fid].append((m.duration, var))
            same = solver.Constraint(0, 0)              # sum at[f, .] == sum on[f, .]
            for var in total_on:
                same.SetCoefficient(var, -1)
            for place in places:
                if not joint[place].any():
                    continue
                var = solver.NumVar(0, 1, "")
                same.SetCoefficient(var, 1)
                place_teams[place].SetCoefficient(var, 1)
                objective.SetCoefficient(var, f.travel[place])
                limit = solver.Constraint(-inf, 0)      # at[f, place] <= x[., place]
                limit.SetCoefficient(var, 1)
                limit.SetCoefficient(at_place[place], -1)
            if fid in m.pinned_facilitators:
                pinned = solver.Constraint(0, 0)        # sum on[pinned, .] == placed
                for var in total_on:
                    pinned.SetCoefficient(var, 1)
                pinned.SetCoefficient(placed, -1)
        for language in m.languages:
            spoken = solver.Constraint(0, inf)          # speakers' days >= placed
            for (fid, _), var in on.items():
                if language in instance.facilitators[fid].languages:
                    spoken.SetCoefficient(var, 1)
            spoken.SetCoefficient(placed, -1)

    for (fid, day), terms in staff_day.items():
        f = instance.facilitators[fid]
        cap = usable_minutes(f.availability, instance.fac_busy[fid], day)
        if sum(d for d, _ in terms) > cap:
            con = solver.Constraint(-inf, cap)
            for d, var in terms:
                con.SetCoefficient(var, d)
    for (fid, week), terms in staff_week.items():
        cap = instance.facilitators[fid].max_minutes_per_week - int(instance.week_minutes[fid][min(week, instance.weeks - 1)])
        if sum(d for d, _ in terms) > cap:
            con = solver.Constraint(-inf, cap)
            for d, var in terms:
                con.SetCoefficient(var, d)
    for (venue_id, day), terms in venue_day.items():
        venue = instance.venues[venue_id]
        cap = sum(usable_minutes(venue.opening, instance.room_busy[r.room_id], day) for r in venue.rooms)
        if sum(d for d, _ in terms) > cap:
            con = solver.Constraint(-inf, cap)
            for d, var in terms:
                con.SetCoefficient(var, d)

    rate = weights.overload_hour
    county_ids = {f.facilitator_id for f in instance.problem.facilitators}
    for fid in county_ids:
        share = instance.shares.get(fid, 0)
        fixed = instance.fixed_load.get(fid, 0)
        terms = load.get(fid, [])
        if rate == 0 or fixed + sum(d for d, _ in terms) <= share:
            continue
        if not terms:
            constant += instance.overload_points(fid, fixed)
            continue
        over = solver.NumVar(0, inf, "")
        con = solver.Constraint(fixed - share, inf)     # over >= fixed + load - share
        con.SetCoefficient(over, 1)
        for d, var in terms:
            con.SetCoefficient(var, -d)
        points = solver.NumVar(0, inf, "")
        floor = solver.Constraint(-59, inf)             # 60 points >= rate x over - 59
        floor.SetCoefficient(points, 60)
        floor.SetCoefficient(over, -rate)
        objective.SetCoefficient(points, 1)

    objective.SetMinimization()
    status = solver.Solve()
    if status != pywraplp.Solver.OPTIMAL:
        # Any LP bound needs an optimal (or dual feasible) solve; fall back to what no plan avoids.
        return float(constant - weights.unplaced * sum(1 for c in candidates if c.possible))
    value = objective.Value() + constant
    # GLOP works to a tolerance of about 1e-7; step down by a little more so float error cannot lift
    # the bound above the optimum.
    return float(value - 1e-6 * max(1.0, abs(value)))
