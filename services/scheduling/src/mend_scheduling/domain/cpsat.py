"""The CP-SAT model of one county's allocation, over the exact candidate sets of `candidates`.

Per meeting: `placed`; a slot index `slot` (start = slot x slot_minutes) whose domain is the
meeting's feasible starts; a bool per candidate facilitator and per candidate room (and per venue,
the sum of its rooms); `team[f, venue]` = facilitator f at that venue, so facilitators' travel is
exactly linear. Each facilitator or room chosen restricts the slot to the starts where it is
allowed. Optional fixed-size intervals on the shared start, one per facilitator and per room, go
into a no-overlap per facilitator and per room; existing bookings and fixed placements need no
intervals because the candidate sets already exclude every start that overlaps them. Weekly hours
use per-week indicators of the start where a meeting's starts span weeks. The objective terms are
exact functions of the decisions (waiting via the start's day, overload via max and a floor), so the
solver's objective equals the plan's cost, and its bound is a bound on the county's true optimum.

The tight formulation (`tight=True`) adds, redundantly, the start's day as bools, facilitator x day
and venue x day products and per-day capacities, mirroring the LP of `lower_bound`: its relaxation
then counts waiting and crowding, which proves small counties optimal in seconds, provided CP-SAT's
presolve is off (it rewrites those equalities out of the LP's reach). It is slower to build and
search, so large counties use the lean model and get it only inside neighbourhoods.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from ortools.sat.python import cp_model

from .candidates import HOME, Instance, MeetingCandidates, usable_minutes
from .planning import MINUTES_PER_DAY, MINUTES_PER_WEEK, Placement


@dataclass
class _MeetingVars:
    c: MeetingCandidates
    placed: cp_model.IntVar
    slot: cp_model.IntVar
    day: cp_model.IntVar
    waiting: cp_model.IntVar
    staff: dict[str, cp_model.IntVar]                               # facilitator id -> bool
    rooms: dict[str, cp_model.IntVar]                               # room id -> bool
    venues: dict[str, cp_model.IntVar]                              # venue id -> bool
    team: dict[tuple[str, str], cp_model.IntVar] = field(default_factory=dict)   # (facilitator, venue) -> bool
    weeks: dict[int, cp_model.IntVar] = field(default_factory=dict)              # week -> starts in it
    staff_week: dict[tuple[str, int], cp_model.IntVar] = field(default_factory=dict)
    days: dict[int, cp_model.IntVar] = field(default_factory=dict)                # day -> starts that day (placed)
    staff_day: dict[tuple[str, int], cp_model.IntVar] = field(default_factory=dict)
    venue_day: dict[tuple[str, int], cp_model.IntVar] = field(default_factory=dict)


@dataclass
class CountyResult:
    placements: list[Placement]
    status: str
    objective: int              # model objective of the returned placements (the county's share)
    bound: int
    seconds: float
    seconds_to_first: float     # until the first solution; the whole time if there was none
    solutions: int


class _FirstSolution(cp_model.CpSolverSolutionCallback):
    def __init__(self, started: float):
        super().__init__()
        self.started = started
        self.first: float | None = None
        self.count = 0

    def on_solution_callback(self) -> None:
        if self.first is None:
            self.first = time.perf_counter() - self.started
        self.count += 1


class CountyModel:
    """The model of the meetings in `candidates` (one county's, possible ones) on top of `instance`."""

    def __init__(self, instance: Instance, candidates: Sequence[MeetingCandidates], facilitator_ids: Sequence[str],
                 *, tight: bool = False):
        self.instance = instance
        self.tight = tight
        self.candidates = [c for c in candidates if c.possible]
        self.facilitator_ids = list(facilitator_ids)
        self.model = cp_model.CpModel()
        self.vars: dict[str, _MeetingVars] = {}
        self.overload: dict[str, tuple[cp_model.IntVar, cp_model.IntVar]] = {}
        self.objective_terms: list = []
        self.constant = 0
        self._build()

    # ---- model ---------------------------------------------------------------------------------
    def _build(self) -> None:
        model, inst = self.model, self.instance
        slot_minutes = inst.problem.slot_minutes
        weights = inst.weights
        facilitator_intervals: dict[str, list] = defaultdict(list)
        room_intervals: dict[str, list] = defaultdict(list)
        week_terms: dict[tuple[str, int], list] = defaultdict(list)
        load_terms: dict[str, list] = defaultdict(list)
        staff_day_terms: dict[tuple[str, int], list] = defaultdict(list)
        venue_day_terms: dict[tuple[str, int], list] = defaultdict(list)
        objective = []

        for c in self.candidates:
            m = c.meeting
            mid = m.meeting_id
            slots = (c.starts // slot_minutes).tolist()
            placed = model.NewBoolVar(f"placed[{mid}]")
            slot = model.NewIntVarFromDomain(cp_model.Domain.FromValues(slots), f"slot[{mid}]")
            days = sorted(set((c.starts // MINUTES_PER_DAY).tolist()))
            day = model.NewIntVarFromDomain(cp_model.Domain.FromValues(days), f"day[{mid}]")
            model.Add(MINUTES_PER_DAY * day <= slot_minutes * slot)
            model.Add(slot_minutes * slot <= MINUTES_PER_DAY * day + MINUTES_PER_DAY - 1)
            first_day = m.earliest // MINUTES_PER_DAY
            waiting = model.NewIntVar(0, weights.waiting_day * max(0, days[-1] - first_day), f"waiting[{mid}]")
            model.Add(waiting == weights.waiting_day * (day - first_day)).OnlyEnforceIf(placed)
            model.Add(waiting == 0).OnlyEnforceIf(placed.Not())
            mv = _MeetingVars(c, placed, slot, day, waiting, {}, {}, {})
            self.vars[mid] = mv
            every_start = len(slots)

            def only_when(literal, allowed) -> None:
                if int(allowed.sum()) < every_start:
                    values = (c.starts[allowed] // slot_minutes).tolist()
                    model.AddLinearExpressionInDomain(slot, cp_model.Domain.FromValues(values)).OnlyEnforceIf(literal)

            for f in c.facilitators:
                fid = f.facilitator_id
                y = model.NewBoolVar(f"staff[{mid},{fid}]")
                mv.staff[fid] = y
                only_when(y, f.allowed)
                facilitator_intervals[fid].append(
                    model.NewOptionalFixedSizeIntervalVar(slot_minutes * slot, m.duration, y, f"busy[{mid},{fid}]"))
                load_terms[fid].append((m.duration, y))
            model.Add(sum(mv.staff.values()) == m.facilitators_needed * placed)
            for pinned in m.pinned_facilitators:
                model.Add(mv.staff[pinned] == placed)
            for language in m.languages:
                speakers = [y for fid, y in mv.staff.items() if language in inst.facilitators[fid].languages]
                model.Add(sum(speakers) >= placed)

            open_by_venue: dict = {}    # venue -> starts at which one of its rooms is allowed
            if c.home:
                objective.append(c.place_cost[HOME] * placed)
                objective.extend(f.travel[HOME] * mv.staff[f.facilitator_id] for f in c.facilitators)
            else:
                for r in c.rooms:
                    x = model.NewBoolVar(f"room[{mid},{r.room_id}]")
                    mv.rooms[r.room_id] = x
                    only_when(x, r.allowed)
                    room_intervals[r.room_id].append(
                        model.NewOptionalFixedSizeIntervalVar(slot_minutes * slot, m.duration, x, f"use[{mid},{r.room_id}]"))
                by_venue = defaultdict(list)
                for r in c.rooms:
                    by_venue[r.venue_id].append(mv.rooms[r.room_id])
                    open_by_venue[r.venue_id] = open_by_venue[r.venue_id] | r.allowed if r.venue_id in open_by_venue else r.allowed
                for venue_id, xs in by_venue.items():
                    v = model.NewBoolVar(f"venue[{mid},{venue_id}]")
                    model.Add(v == sum(xs))
                    mv.venues[venue_id] = v
                    objective.append(c.place_cost[venue_id] * v)
                model.Add(sum(mv.venues.values()) == placed)
                if len(mv.venues) == 1:
                    (venue_id,) = mv.venues
                    objective.extend(f.travel[venue_id] * mv.staff[f.facilitator_id] for f in c.facilitators)
                else:
                    self._add_team(mv, objective, open_by_venue)
            objective.append(waiting)
            objective.append(weights.unplaced * (1 - placed))
            self._add_weeks(mv, week_terms)
            if self.tight:
                self._add_days(mv, staff_day_terms, venue_day_terms, open_by_venue)

        for fid, intervals in facilitator_intervals.items():
            if len(intervals) > 1:
                model.AddNoOverlap(intervals)
        for room_id, intervals in room_intervals.items():
            if len(intervals) > 1:
                model.AddNoOverlap(intervals)
        for (fid, week), terms in week_terms.items():
            room_left = inst.facilitators[fid].max_minutes_per_week - int(inst.week_minutes[fid][week])
            if sum(d for d, _ in terms) > room_left:
                model.Add(sum(d * b for d, b in terms) <= room_left)
        for (fid, day), terms in staff_day_terms.items():
            f = inst.facilitators[fid]
            cap = usable_minutes(f.availability, inst.fac_busy[fid], day)
            if sum(d for d, _ in terms) > cap:
                model.Add(sum(d * b for d, b in terms) <= cap)
        for (venue_id, day), terms in venue_day_terms.items():
            venue = inst.venues[venue_id]
            cap = sum(usable_minutes(venue.opening, inst.room_busy[r.room_id], day) for r in venue.rooms)
            if sum(d for d, _ in terms) > cap:
                model.Add(sum(d * b for d, b in terms) <= cap)
        for fid in self.facilitator_ids:
            objective.extend(self._add_overload(fid, load_terms.get(fid, [])))
        self.objective_terms = objective
        model.Minimize(sum(objective) + self.constant)

    def _add_team(self, mv: _MeetingVars, objective: list, open_by_venue: dict) -> None:
        """team[f, v] = staff[f] and venue[v], exactly, through two assignment equalities."""
        model, c = self.model, mv.c
        mid = c.meeting.meeting_id
        per_staff = defaultdict(list)
        per_venue = defaultdict(list)
        for f in c.facilitators:
            for venue_id, open_ in open_by_venue.items():
                # Only pairs that share at least one start can ever be chosen together.
                if not (f.allowed & open_).any():
                    continue
                z = model.NewBoolVar(f"team[{mid},{f.facilitator_id},{venue_id}]")
                mv.team[(f.facilitator_id, venue_id)] = z
                # Implied for integers, but not in the LP relaxation when two are needed.
                model.AddImplication(z, mv.venues[venue_id])
                per_staff[f.facilitator_id].append(z)
                per_venue[venue_id].append(z)
                objective.append(f.travel[venue_id] * z)
        for fid, y in mv.staff.items():
            model.Add(sum(per_staff[fid]) == y)
        for venue_id, v in mv.venues.items():
            model.Add(sum(per_venue[venue_id]) == c.meeting.facilitators_needed * v)

    def _add_weeks(self, mv: _MeetingVars, week_terms: dict) -> None:
        """Weekly-hours terms: minutes x staff when a facilitator's starts all fall in one week,
        else minutes x (staff and starts-in-week) through per-week indicators."""
        model, c = self.model, mv.c
        mid = c.meeting.meeting_id
        slot_minutes = self.instance.problem.slot_minutes
        weeks = c.starts // MINUTES_PER_WEEK
        spanned = sorted(set(weeks.tolist()))
        if len(spanned) > 1:
            for week in spanned:
                w = model.NewBoolVar(f"week[{mid},{week}]")
                mv.weeks[week] = w
                values = (c.starts[weeks == week] // slot_minutes).tolist()
                model.AddLinearExpressionInDomain(mv.slot, cp_model.Domain(values[0], values[-1])).OnlyEnforceIf(w)
            model.AddExactlyOne(mv.weeks.values())
        for f in c.facilitators:
            fid = f.facilitator_id
            y = mv.staff[fid]
            own = sorted(set(weeks[f.allowed].tolist()))
            if len(own) == 1:
                week_terms[(fid, own[0])].append((c.meeting.duration, y))
                continue
            for week in own:
                u = model.NewBoolVar(f"staff_week[{mid},{fid},{week}]")
                model.AddBoolOr([y.Not(), mv.weeks[week].Not(), u])   # u >= y + week - 1
                mv.staff_week[(fid, week)] = u
                week_terms[(fid, week)].append((c.meeting.duration, u))

    def _add_days(self, mv: _MeetingVars, staff_day_terms: dict, venue_day_terms: dict, open_by_venue: dict) -> None:
        """The tight formulation: the start's day as bools, facilitators and venue per day as exact
        products (two assignment equalities each, like `team`), and, per facilitator and per venue
        and day, the minutes that fit (see `usable_minutes`). All redundant for the integer model,
        they give the LP relaxation the waiting and the crowding that prove small counties optimal."""
        model, c = self.model, mv.c
        m = c.meeting
        mid = m.meeting_id
        weights = self.instance.weights
        days, first = np.unique(c.starts // MINUTES_PER_DAY, return_index=True)   # starts ascend, so days group
        days = days.tolist()
        first_day = m.earliest // MINUTES_PER_DAY

        def by_day(mask) -> list[int]:
            return [day for day, hit in zip(days, np.logical_or.reduceat(mask, first)) if hit]

        for day in days:
            b = model.NewBoolVar(f"on_day[{mid},{day}]")
            model.Add(mv.day == day).OnlyEnforceIf(b)
            mv.days[day] = b
        model.Add(sum(mv.days.values()) == mv.placed)
        model.Add(mv.waiting == sum(weights.waiting_day * (day - first_day) * b for day, b in mv.days.items()))
        per_day = defaultdict(list)
        for f in c.facilitators:
            fid = f.facilitator_id
            mine = []
            for day in by_day(f.allowed):
                b = model.NewBoolVar(f"staff_day[{mid},{fid},{day}]")
                mv.staff_day[(fid, day)] = b
                mine.append(b)
                per_day[day].append(b)
                staff_day_terms[(fid, day)].append((m.duration, b))
                model.AddImplication(b, mv.days[day])    # once per meeting: not implied in the LP when two are needed
            model.Add(sum(mine) == mv.staff[fid])
        for day, b in mv.days.items():
            model.Add(sum(per_day[day]) == m.facilitators_needed * b)
        if c.home:
            return
        per_day = defaultdict(list)
        for venue_id, v in mv.venues.items():
            mine = []
            for day in by_day(open_by_venue[venue_id]):
                b = model.NewBoolVar(f"venue_day[{mid},{venue_id},{day}]")
                mv.venue_day[(venue_id, day)] = b
                mine.append(b)
                per_day[day].append(b)
                venue_day_terms[(venue_id, day)].append((m.duration, b))
            model.Add(sum(mine) == v)
        for day, b in mv.days.items():
            model.Add(sum(per_day[day]) == b)
        # A facilitator works a day only at a venue they can share a start with that day.
        fitting = defaultdict(list)
        for f in c.facilitators:
            for venue_id, open_ in open_by_venue.items():
                for day in by_day(f.allowed & open_):
                    fitting[(f.facilitator_id, day)].append(mv.venue_day[(venue_id, day)])
        for key, b in mv.staff_day.items():
            model.Add(b <= sum(fitting[key]))

    def _add_overload(self, fid: str, terms: list) -> list:
        """floor(overload_hour x max(0, load - share) / 60), exactly."""
        inst = self.instance
        share = inst.shares.get(fid, 0)
        fixed = inst.fixed_load.get(fid, 0)
        most = fixed + sum(d for d, _ in terms)
        rate = inst.weights.overload_hour
        if most <= share or rate == 0:
            return []
        if not terms:
            self.constant += inst.overload_points(fid, fixed)
            return []
        over = self.model.NewIntVar(0, most - share, f"over[{fid}]")
        self.model.AddMaxEquality(over, [fixed + sum(d * y for d, y in terms) - share, 0])
        points = self.model.NewIntVar(0, rate * (most - share) // 60, f"overload[{fid}]")
        self.model.Add(60 * points <= rate * over)
        self.model.Add(rate * over <= 60 * points + 59)
        self.overload[fid] = (over, points)
        return [points]

    # ---- hint and solution ---------------------------------------------------------------------
    def hint(self, placements: Sequence[Placement]) -> None:
        """A complete hint from a plan of these meetings (e.g. the greedy one)."""
        model, inst = self.model, self.instance
        slot_minutes = inst.problem.slot_minutes
        by_meeting = {p.meeting_id: p for p in placements}
        load = defaultdict(int, inst.fixed_load)
        for mid, mv in self.vars.items():
            p = by_meeting.get(mid)
            start = p.start if p is not None else int(mv.c.starts[0])
            model.AddHint(mv.placed, p is not None)
            model.AddHint(mv.slot, start // slot_minutes)
            model.AddHint(mv.day, start // MINUTES_PER_DAY)
            model.AddHint(mv.waiting, inst.waiting_points(mv.c.meeting, start) if p is not None else 0)
            team = set(p.facilitator_ids) if p is not None else set()
            for fid, y in mv.staff.items():
                model.AddHint(y, fid in team)
                if fid in team:
                    load[fid] += mv.c.meeting.duration
            for room_id, x in mv.rooms.items():
                model.AddHint(x, p is not None and p.room_id == room_id)
            for venue_id, v in mv.venues.items():
                model.AddHint(v, p is not None and p.venue_id == venue_id)
            for (fid, venue_id), z in mv.team.items():
                model.AddHint(z, p is not None and fid in team and p.venue_id == venue_id)
            week = start // MINUTES_PER_WEEK
            for w, b in mv.weeks.items():
                model.AddHint(b, w == week)
            for (fid, w), u in mv.staff_week.items():
                model.AddHint(u, fid in team and w == week)
            day = start // MINUTES_PER_DAY
            for d, b in mv.days.items():
                model.AddHint(b, p is not None and d == day)
            for (fid, d), b in mv.staff_day.items():
                model.AddHint(b, fid in team and d == day)
            for (venue_id, d), b in mv.venue_day.items():
                model.AddHint(b, p is not None and p.venue_id == venue_id and d == day)
        for fid, (over, points) in self.overload.items():
            excess = max(0, load[fid] - inst.shares.get(fid, 0))
            model.AddHint(over, excess)
            model.AddHint(points, inst.weights.overload_hour * excess // 60)

    def objective_of(self, placements: Sequence[Placement]) -> int:
        """The model objective of a plan of these meetings, computed directly."""
        inst = self.instance
        mine = [p for p in placements if p.meeting_id in self.vars]
        total = self.constant + inst.weights.unplaced * (len(self.vars) - len(mine))
        total += sum(inst.placement_points(p) for p in mine)
        load = defaultdict(int, inst.fixed_load)
        for p in mine:
            for fid in p.facilitator_ids:
                load[fid] += inst.meetings[p.meeting_id].duration
        for fid, _ in self.overload.items():
            total += inst.overload_points(fid, load[fid])
        return total

    def solve(self, time_limit: float, workers: int, seed: int, log: bool = False) -> CountyResult:
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = max(0.05, time_limit)
        solver.parameters.num_workers = workers
        solver.parameters.random_seed = seed % 2_147_483_647   # an int32 parameter
        solver.parameters.log_search_progress = log
        # Probing, repeated presolve rounds and symmetry detection cost seconds of wall time on the
        # larger county models (many enforced domain constraints) and delay the first solution far
        # more than they help the search; measured on the 500-meeting benchmark.
        solver.parameters.cp_model_probing_level = 0
        solver.parameters.max_presolve_iterations = 1
        solver.parameters.symmetry_level = 0
        if self.tight:
            # Presolve rewrites the day and team equalities into forms the LP no longer sees, and
            # the bound falls back to what the lean model gives; without it small counties are
            # proved optimal in seconds instead of minutes (measured).
            solver.parameters.cp_model_presolve = False
        started = time.perf_counter()
        callback = _FirstSolution(started)
        status = solver.Solve(self.model, callback)
        seconds = time.perf_counter() - started
        name = solver.StatusName(status)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return CountyResult([], name, 0, int(round(solver.BestObjectiveBound())) if status != cp_model.MODEL_INVALID else 0,
                                seconds, seconds, callback.count)
        placements = self._read(solver)
        return CountyResult(placements, name, int(round(solver.ObjectiveValue())),
                            int(round(solver.BestObjectiveBound())), seconds,
                            callback.first if callback.first is not None else seconds, callback.count)

    def _read(self, solver: cp_model.CpSolver) -> list[Placement]:
        slot_minutes = self.instance.problem.slot_minutes
        out = []
        for mid, mv in self.vars.items():
            if not solver.BooleanValue(mv.placed):
                continue
            start = solver.Value(mv.slot) * slot_minutes
            team = tuple(sorted(fid for fid, y in mv.staff.items() if solver.BooleanValue(y)))
            room_id = next((rid for rid, x in mv.rooms.items() if solver.BooleanValue(x)), "")
            venue_id = self.instance.rooms[room_id][0].venue_id if room_id else ""
            out.append(Placement(mid, start, team, venue_id, room_id))
        return out
