"""Large-neighbourhood search over one county's plan: free a few related meetings, keep every other
placement fixed, re-solve the small model exactly with CP-SAT, keep the result if it is no worse.

Why not only CP-SAT's own LNS: with two cores its neighbourhoods share one thread with the rest of
the portfolio and each one copies and presolves the whole county model; on the 500-meeting
benchmark it managed about one a second and improved less in 150 s than this does in 20. Here a
neighbourhood is built from scratch as a small model (its meetings' candidate sets recomputed with
everyone else's placements as fixed bookings, in the tight formulation, which proves small models
fast), which takes a fraction of a second all told.
Because the small model's objective is the exact objective with the rest fixed, "no worse in the
neighbourhood" is "no worse overall", and the plan only ever improves (or moves sideways).

Neighbourhoods, chosen by how often each has paid off so far:
- around an unplaced meeting: it and the placed meetings holding its candidate facilitators or
  rooms during its window (placing one more meeting is worth more than anything else);
- related (Shaw) removal: meetings sharing facilitators, days and places with a random seed meeting;
- a facilitator pair: everything two facilitators who could swap work are doing;
- a time window: meetings starting within a few days of each other;
- random meetings.
"""
from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Sequence

from .candidates import Instance, MeetingCandidates
from .cpsat import CountyModel
from .planning import MINUTES_PER_DAY, Placement


# A neighbourhood gets this long; improvements come early, proofs of optimality can take far longer.
_NEIGHBOURHOOD_SECONDS = 0.4


@dataclass
class SearchStats:
    iterations: int = 0
    improvements: int = 0
    seconds: float = 0.0


class CountySearch:
    def __init__(self, instance: Instance, candidates: Sequence[MeetingCandidates], facilitator_ids: Sequence[str],
                 placements: Sequence[Placement], *, workers: int, seed: int, tight: bool = False):
        self.instance = instance
        self.tight = tight
        self.candidates = {c.meeting.meeting_id: c for c in candidates if c.possible}
        self.facilitator_ids = list(facilitator_ids)
        self.current = {p.meeting_id: p for p in placements}
        self.workers = workers
        self.seed = seed
        self.rng = random.Random(seed)
        self.size = 14.0                   # neighbourhood size, adapted to how fast they solve
        self.stats = SearchStats()
        self.can_use = {mid: {f.facilitator_id for f in c.facilitators} for mid, c in self.candidates.items()}
        self.can_book = {mid: {r.room_id for r in c.rooms} for mid, c in self.candidates.items()}
        self.operators: list[tuple[str, Callable[[int], set[str]]]] = [
            ("unplaced", self._around_unplaced), ("related", self._related), ("pair", self._facilitator_pair),
            ("window", self._time_window), ("random", self._random),
        ]
        self.scores = {name: 1.0 for name, _ in self.operators}

    # ---- the loop ------------------------------------------------------------------------------
    def run(self, deadline: float) -> list[Placement]:
        started = time.perf_counter()
        while True:
            left = deadline - time.perf_counter()
            if left < 0.15 or len(self.candidates) == 0:
                break
            name, make = self._pick_operator()
            size = max(2, min(len(self.candidates), int(self.size)))
            chosen = make(size)
            if not chosen:
                self.scores[name] *= 0.5
                continue
            improved, proved = self._resolve(chosen, min(left, _NEIGHBOURHOOD_SECONDS))
            self.stats.iterations += 1
            # Grow while neighbourhoods are solved to optimality, shrink when they time out.
            self.size = min(80.0, self.size * 1.08) if proved else max(4.0, self.size * 0.8)
            self.scores[name] = 0.8 * self.scores[name] + (1.0 if improved else 0.1)
            self.stats.improvements += improved
        self.stats.seconds = time.perf_counter() - started
        return list(self.current.values())

    def _pick_operator(self) -> tuple[str, Callable[[int], set[str]]]:
        usable = [(name, make) for name, make in self.operators if name != "unplaced" or self._unplaced()]
        total = sum(self.scores[name] for name, _ in usable)
        x = self.rng.random() * total
        for name, make in usable:
            x -= self.scores[name]
            if x <= 0:
                return name, make
        return usable[-1]

    def _resolve(self, chosen: set[str], time_limit: float) -> tuple[bool, bool]:
        """Re-solve the chosen meetings with all else fixed; (improved, solved to optimality)."""
        others = [p for mid, p in self.current.items() if mid not in chosen]
        sub = Instance(self.instance.problem, others)
        candidates = [sub.candidates(self.instance.meetings[mid]) for mid in sorted(chosen)]
        model = CountyModel(sub, candidates, self.facilitator_ids, tight=self.tight)
        hint = [self.current[mid] for mid in sorted(chosen) if mid in self.current]
        model.hint(hint)
        before = model.objective_of(hint)
        result = model.solve(time_limit, self.workers, self.seed + self.stats.iterations)
        if result.status not in ("OPTIMAL", "FEASIBLE"):
            return False, False
        after = model.objective_of(result.placements)
        if after > before:
            return False, result.status == "OPTIMAL"
        for mid in chosen:
            self.current.pop(mid, None)
        for p in result.placements:
            self.current[p.meeting_id] = p
        return after < before, result.status == "OPTIMAL"

    # ---- neighbourhoods ------------------------------------------------------------------------
    def _unplaced(self) -> list[str]:
        return sorted(mid for mid in self.candidates if mid not in self.current)

    def _placed(self) -> list[str]:
        return sorted(mid for mid in self.current if mid in self.candidates)

    def _around_unplaced(self, size: int) -> set[str]:
        """A meeting left out and what stands in its way: first the placements that overlap one of
        its starts with a facilitator it needs (pinned ones above all) or a room it could use, then
        its pinned facilitators' other work that week (weekly hours), then the rest nearby."""
        waiting = self._unplaced()
        if not waiting:
            return set()
        target = self.rng.choice(waiting)
        c = self.candidates[target]
        m = c.meeting
        pinned = set(m.pinned_facilitators)
        starts = c.starts.tolist()
        ranked: list[tuple[float, str]] = []
        for mid in self._placed():
            p = self.current[mid]
            team = set(p.facilitator_ids)
            if not (team & self.can_use[target] or p.room_id in self.can_book[target]):
                continue
            end = p.start + self.instance.meetings[mid].duration
            overlaps = any(s < end and p.start < s + m.duration for s in starts)
            same_week = any(p.start // (7 * MINUTES_PER_DAY) == s // (7 * MINUTES_PER_DAY) for s in starts)
            if overlaps and team & pinned:
                rank = 0
            elif overlaps and team & self.can_use[target]:
                rank = 1
            elif overlaps:
                rank = 2
            elif same_week and team & pinned:
                rank = 3
            elif m.earliest - MINUTES_PER_DAY <= p.start <= m.latest + MINUTES_PER_DAY:
                rank = 4
            else:
                continue
            ranked.append((rank + self.rng.random(), mid))
        ranked.sort()
        chosen = {target} | {mid for _, mid in ranked[: size - 1]}
        # Other meetings waiting for the same people may come along when there is room.
        for mid in waiting:
            if len(chosen) >= size:
                break
            if self.can_use[mid] & self.can_use[target]:
                chosen.add(mid)
        return chosen

    def _relatedness(self, a: str, b: str) -> float:
        pa, pb = self.current.get(a), self.current.get(b)
        score = 0.3 * len(self.can_use[a] & self.can_use[b]) / max(1, len(self.can_use[a]))
        if pa is not None and pb is not None:
            score += 1.0 * len(set(pa.facilitator_ids) & set(pb.facilitator_ids))
            score += 1.0 / (1 + abs(pa.start - pb.start) / MINUTES_PER_DAY)
            score += 0.5 * (pa.venue_id == pb.venue_id and pa.venue_id != "")
        return score

    def _related(self, size: int) -> set[str]:
        pool = self._placed() + self._unplaced()
        if not pool:
            return set()
        chosen = [self.rng.choice(pool)]
        rest = set(pool) - set(chosen)
        while len(chosen) < size and rest:
            anchor = self.rng.choice(chosen)
            ranked = sorted(rest, key=lambda mid: -self._relatedness(anchor, mid))
            # Randomised pick among the most related, as in Shaw removal.
            pick = ranked[int(len(ranked) * self.rng.random() ** 4)]
            chosen.append(pick)
            rest.discard(pick)
        return set(chosen)

    def _facilitator_pair(self, size: int) -> set[str]:
        working: dict[str, list[str]] = defaultdict(list)
        for mid in self._placed():
            for fid in self.current[mid].facilitator_ids:
                working[fid].append(mid)
        if not working:
            return set()
        first = self.rng.choice(sorted(working))
        # A partner who could take some of first's meetings.
        partners = sorted({fid for mid in working[first] for fid in self.can_use[mid]} - {first})
        second = self.rng.choice(partners) if partners else None
        chosen = list(working[first]) + (list(working.get(second, [])) if second else [])
        self.rng.shuffle(chosen)
        picked = set(chosen[:size])
        for mid in self._unplaced():
            if len(picked) >= size:
                break
            if first in self.can_use[mid] or (second and second in self.can_use[mid]):
                picked.add(mid)
        return picked

    def _time_window(self, size: int) -> set[str]:
        placed = self._placed()
        if not placed:
            return set()
        centre = self.current[self.rng.choice(placed)].start
        nearest = sorted(placed, key=lambda mid: abs(self.current[mid].start - centre))
        chosen = set(nearest[:size])
        for mid in self._unplaced():
            m = self.candidates[mid].meeting
            if len(chosen) < size + 2 and m.earliest <= centre <= m.latest:
                chosen.add(mid)
        return chosen

    def _random(self, size: int) -> set[str]:
        pool = sorted(self.candidates)
        return set(self.rng.sample(pool, min(size, len(pool))))
