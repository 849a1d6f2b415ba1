"""The greedy baseline: meetings one at a time, most urgent first, each taking its cheapest option
that is still free given the choices before it.

Order: by the end of the meeting's window (latest first to run out), then by how few options it
has. For each meeting, (day, place) groups are visited in order of a lower bound on their cost
(waiting + participants' travel + the cheapest facilitators' travel), so the search stops as soon
as no unvisited group could beat the best option found. It also serves as CP-SAT's warm start.
"""
from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .candidates import HOME, Instance, MeetingCandidates
from .planning import MINUTES_PER_DAY, MINUTES_PER_WEEK, Placement


@dataclass
class _Choice:
    cost: int
    start: int
    facilitators: tuple[str, ...]
    venue_id: str
    room_id: str


class Occupancy:
    """What the placements made so far take: facilitators' and rooms' time, weekly minutes, loads."""

    def __init__(self, instance: Instance):
        self.instance = instance
        self.facilitator_spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.room_spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.week_minutes = {fid: arr.copy() for fid, arr in instance.week_minutes.items()}
        self.load: dict[str, int] = defaultdict(int, instance.fixed_load)

    @staticmethod
    def _free(spans: list[tuple[int, int]], start: int, end: int) -> bool:
        i = bisect.bisect_left(spans, (end,))   # spans are disjoint, so only the one before can overlap
        return i == 0 or spans[i - 1][1] <= start

    def facilitator_free(self, fid: str, start: int, duration: int) -> bool:
        week = min(start // MINUTES_PER_WEEK, self.instance.weeks - 1)
        limit = self.instance.facilitators[fid].max_minutes_per_week
        return (self.week_minutes[fid][week] + duration <= limit
                and self._free(self.facilitator_spans[fid], start, start + duration))

    def room_free(self, room_id: str, start: int, duration: int) -> bool:
        return self._free(self.room_spans[room_id], start, start + duration)

    def overload_step(self, fid: str, duration: int) -> int:
        """Extra overload points if `fid` takes `duration` more minutes."""
        load = self.load[fid]
        return self.instance.overload_points(fid, load + duration) - self.instance.overload_points(fid, load)

    def book(self, placement: Placement, duration: int) -> None:
        span = (placement.start, placement.start + duration)
        for fid in placement.facilitator_ids:
            bisect.insort(self.facilitator_spans[fid], span)
            self.week_minutes[fid][min(placement.start // MINUTES_PER_WEEK, self.instance.weeks - 1)] += duration
            self.load[fid] += duration
        if placement.room_id:
            bisect.insort(self.room_spans[placement.room_id], span)


def cheapest_team(instance: Instance, c: MeetingCandidates, free: list[tuple[int, str]]) -> tuple[int, tuple[str, ...]] | None:
    """The cheapest set of facilitators from `free` ((cost, id) pairs, ascending) that has the
    right size, includes the pinned ones and covers the languages; None if there is none."""
    m = c.meeting
    ids = {fid for _, fid in free}
    if not set(m.pinned_facilitators) <= ids:
        return None
    pinned = [(cost, fid) for cost, fid in free if fid in m.pinned_facilitators]
    others = [(cost, fid) for cost, fid in free if fid not in m.pinned_facilitators]
    rest = m.facilitators_needed - len(pinned)
    if rest < 0 or len(others) < rest:
        return None
    spoken = set().union(*(instance.facilitators[fid].languages for _, fid in pinned)) if pinned else set()
    uncovered = m.languages - spoken
    if not uncovered:
        team = pinned + others[:rest]
        return sum(cost for cost, _ in team), tuple(sorted(fid for _, fid in team))
    best = None
    # Teams are small (one or two, rarely more), so trying the combinations is cheap.
    for combo in itertools.combinations(others, rest):
        cost = sum(x for x, _ in combo)
        if best is not None and cost >= best[0]:
            continue
        covered = set().union(*(instance.facilitators[fid].languages for _, fid in combo)) if combo else set()
        if uncovered <= covered:
            best = (cost, combo)
    if best is None:
        return None
    team = pinned + list(best[1])
    return sum(cost for cost, _ in team), tuple(sorted(fid for _, fid in team))


def best_option(instance: Instance, c: MeetingCandidates, occupancy: Occupancy) -> _Choice | None:
    """The cheapest option of one meeting that is still free, or None."""
    m = c.meeting
    needed = m.facilitators_needed
    days = c.starts // MINUTES_PER_DAY
    day_values, day_first = np.unique(days, return_index=True)
    day_bounds = list(zip(day_first.tolist(), list(day_first[1:].tolist()) + [len(days)]))
    places = c.venues()
    rooms_by_place = defaultdict(list)
    for r in sorted(c.rooms, key=lambda r: (r.capacity, r.room_id)):   # smallest room that fits first
        rooms_by_place[r.venue_id].append(r)

    groups = []
    for place in places:
        travel = sorted(f.travel[place] for f in c.facilitators)
        floor_cost = c.place_cost[place] + sum(travel[:needed])
        for (lo, hi) in day_bounds:
            groups.append((int(c.waiting[lo]) + floor_cost, lo, hi, place))
    groups.sort()

    best: _Choice | None = None
    for bound, lo, hi, place in groups:
        if best is not None and bound >= best.cost:
            break
        fixed_part = int(c.waiting[lo]) + c.place_cost[place]
        for i in range(lo, hi):
            start = int(c.starts[i])
            room_id = ""
            if place != HOME:
                room = next((r for r in rooms_by_place[place]
                             if r.allowed[i] and occupancy.room_free(r.room_id, start, m.duration)), None)
                if room is None:
                    continue
                room_id = room.room_id
            free = sorted((f.travel[place] + occupancy.overload_step(f.facilitator_id, m.duration), f.facilitator_id)
                          for f in c.facilitators
                          if f.allowed[i] and occupancy.facilitator_free(f.facilitator_id, start, m.duration))
            team = cheapest_team(instance, c, free)
            if team is None:
                continue
            cost = fixed_part + team[0]
            if best is None or cost < best.cost:
                best = _Choice(cost, start, team[1], "" if place == HOME else place, room_id)
            if cost <= bound:
                break   # nothing later in this group can be cheaper
    return best


def greedy_placements(instance: Instance, candidates: Sequence[MeetingCandidates],
                      occupancy: Occupancy | None = None) -> tuple[list[Placement], list[MeetingCandidates]]:
    """Greedy placements for the meetings of `candidates` on top of the instance's fixed ones;
    returns (new placements, candidates of the meetings left out)."""
    occupancy = occupancy or Occupancy(instance)
    order = sorted((c for c in candidates if c.possible),
                   key=lambda c: (c.meeting.latest, c.option_count, c.meeting.meeting_id))
    placements: list[Placement] = []
    left_out = [c for c in candidates if not c.possible]
    for c in order:
        choice = best_option(instance, c, occupancy)
        if choice is None:
            left_out.append(c)
            continue
        placement = Placement(c.meeting.meeting_id, choice.start, choice.facilitators, choice.venue_id, choice.room_id)
        occupancy.book(placement, c.meeting.duration)
        placements.append(placement)
    return placements, left_out
