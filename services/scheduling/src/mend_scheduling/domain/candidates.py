"""Candidate sets for the allocation solvers: for each meeting, the starts, facilitators and rooms
that pass every rule that can be decided for that meeting alone, and, when nothing passes, why.

The pruning is exact: an option is dropped only when it breaks a hard rule whatever the other
meetings do (wrong county, training, vetting on that day, outside an availability or opening
window, over an existing booking or a fixed placement, over the weekly hours already used by
busy work and fixed placements, a room too small, a venue lacking a feature). So the greedy
baseline, the CP-SAT model and the LP bound all search the full feasible set, and CP-SAT's bound
is a bound on the true optimum. What is left to the solvers is what depends on other meetings:
double booking, and weekly hours shared between new meetings.

Everything a solver needs about one county's meetings is in an `Instance`; `Instance.cost`
scores placements by the objective defined in `checker` (which does not share this code).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from .planning import (
    MINUTES_PER_DAY, MINUTES_PER_WEEK, FacilitatorSpec, MeetingSpec, Placement, PlanningProblem, RoomSpec,
    VenueSpec,
)
from .vocabulary import TRAINING_RANK

LANGUAGE_NAMES = {
    "en": "English", "cy": "Welsh", "pl": "Polish", "ur": "Urdu", "pa": "Punjabi", "ar": "Arabic",
    "ro": "Romanian", "bn": "Bengali", "so": "Somali", "bsl": "British Sign Language",
}
HOME = ""   # the place key of a home visit (it books no venue)


def language_text(code: str) -> str:
    name = LANGUAGE_NAMES.get(code)
    return f"{name} ({code})" if name else code


def _join(words: Sequence[str]) -> str:
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


# --------------------------------------------------------------------------------------------------
# Interval arithmetic on numpy arrays of starts

def _merge(intervals: Iterable[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint [lo, hi) spans covering the given ones (touching spans are merged)."""
    spans = sorted((a, b) for a, b in intervals if b > a)
    lo: list[int] = []
    hi: list[int] = []
    for a, b in spans:
        if lo and a <= hi[-1]:
            hi[-1] = max(hi[-1], b)
        else:
            lo.append(a)
            hi.append(b)
    return np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64)


def _start_ranges(windows: Iterable, duration: int) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive ranges of start minutes at which [start, start+duration) fits inside ONE window.
    Merging the ranges is exact (a union of start sets), unlike merging the windows themselves,
    which would let a meeting straddle two adjacent windows."""
    ranges = sorted((w.start, w.end - duration) for w in windows if w.end - w.start >= duration)
    lo: list[int] = []
    hi: list[int] = []
    for a, b in ranges:
        if lo and a <= hi[-1] + 1:
            hi[-1] = max(hi[-1], b)
        else:
            lo.append(a)
            hi.append(b)
    return np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64)


def _in_ranges(starts: np.ndarray, ranges: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    lo, hi = ranges
    if len(lo) == 0:
        return np.zeros(len(starts), dtype=bool)
    i = np.searchsorted(lo, starts, side="right") - 1
    ok = i >= 0
    return ok & (starts <= hi[np.maximum(i, 0)])


def _clear_of(starts: np.ndarray, duration: int, busy: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """True where [start, start+duration) overlaps none of the merged busy spans."""
    lo, hi = busy
    if len(lo) == 0:
        return np.ones(len(starts), dtype=bool)
    i = np.searchsorted(hi, starts, side="right")   # first span ending after the start
    inside = i < len(lo)
    return ~inside | (lo[np.minimum(i, len(lo) - 1)] >= starts + duration)


def usable_minutes(windows: Iterable, busy: tuple[np.ndarray, np.ndarray], day: int) -> int:
    """An upper bound on the minutes of meetings that start on `day` in one resource: the measure of
    the union of [max(w.start, midnight), w.end) over the windows that meet the day, minus busy spans.
    A meeting starting that day lies inside one such window from that midnight on, and clear of busy
    time, and one resource's meetings do not overlap."""
    midnight, next_midnight = day * MINUTES_PER_DAY, (day + 1) * MINUTES_PER_DAY
    spans = sorted((max(w.start, midnight), w.end) for w in windows if w.end > midnight and w.start < next_midnight)
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    total = 0
    lo, hi = busy
    for a, b in merged:
        total += b - a
        # Busy spans are merged and disjoint, so their overlaps with [a, b) add up.
        i = int(np.searchsorted(hi, a, side="right"))
        while i < len(lo) and lo[i] < b:
            total -= min(b, int(hi[i])) - max(a, int(lo[i]))
            i += 1
    return max(0, total)


# --------------------------------------------------------------------------------------------------
@dataclass
class FacilitatorOption:
    facilitator_id: str
    allowed: np.ndarray                 # bool per candidate start
    travel: dict[str, int]              # points per place key (venue id, or HOME)


@dataclass
class RoomOption:
    room_id: str
    venue_id: str
    capacity: int
    allowed: np.ndarray                 # bool per candidate start


@dataclass
class MeetingCandidates:
    meeting: MeetingSpec
    starts: np.ndarray                  # feasible start minutes, ascending
    waiting: np.ndarray                 # waiting points per start
    facilitators: list[FacilitatorOption]
    rooms: list[RoomOption]             # empty for a home visit
    place_cost: dict[str, int]          # participant travel points per place key
    reasons: list[str] = field(default_factory=list)   # why there is no option at all

    @property
    def home(self) -> bool:
        return self.meeting.home is not None

    @property
    def possible(self) -> bool:
        return len(self.starts) > 0

    @property
    def option_count(self) -> int:
        """Start-and-room pairs (starts alone for a home visit) that pass the per-meeting rules."""
        if self.home:
            return int(len(self.starts))
        return int(sum(int(r.allowed.sum()) for r in self.rooms))

    def venues(self) -> list[str]:
        return sorted({r.venue_id for r in self.rooms}) if not self.home else [HOME]


# --------------------------------------------------------------------------------------------------
class Instance:
    """The solver's view of a problem: lookups, busy spans with fixed placements folded in, the
    even shares of the objective, candidate sets and the objective itself."""

    def __init__(self, problem: PlanningProblem, fixed: Sequence[Placement] = ()):
        self.problem = problem
        self.weights = problem.weights
        self.meetings = {m.meeting_id: m for m in problem.meetings}
        self.facilitators = {f.facilitator_id: f for f in problem.facilitators}
        self.venues = {v.venue_id: v for v in problem.venues}
        self.rooms: dict[str, tuple[VenueSpec, RoomSpec]] = {r.room_id: (v, r) for v in problem.venues for r in v.rooms}
        self.horizon_end = problem.horizon_days * MINUTES_PER_DAY
        self.weeks = -(-problem.horizon_days // 7)
        fixed_by_meeting = {p.meeting_id: p for p in problem.fixed}
        for p in fixed:
            fixed_by_meeting.setdefault(p.meeting_id, p)
        self.fixed: dict[str, Placement] = fixed_by_meeting

        # Busy spans, weekly minutes and loads including the fixed placements.
        fac_busy: dict[str, list[tuple[int, int]]] = {f.facilitator_id: [(b.start, b.end) for b in f.busy]
                                                     for f in problem.facilitators}
        room_busy: dict[str, list[tuple[int, int]]] = {rid: [(b.start, b.end) for b in r.busy]
                                                      for rid, (_, r) in self.rooms.items()}
        self.busy_work = {f.facilitator_id: self._busy_work_per_week(f) for f in problem.facilitators}
        self.week_minutes = {fid: arr.copy() for fid, arr in self.busy_work.items()}
        self.fixed_load: dict[str, int] = defaultdict(int)
        for p in self.fixed.values():
            m = self.meetings.get(p.meeting_id)
            if m is None:
                continue
            span = (p.start, p.start + m.duration)
            for fid in p.facilitator_ids:
                if fid in fac_busy:
                    fac_busy[fid].append(span)
                    week = p.start // MINUTES_PER_WEEK
                    if 0 <= week < self.weeks:
                        self.week_minutes[fid][week] += m.duration
                    self.fixed_load[fid] += m.duration
            if p.room_id in room_busy:
                room_busy[p.room_id].append(span)
        self.fac_busy = {fid: _merge(spans) for fid, spans in fac_busy.items()}
        self.room_busy = {rid: _merge(spans) for rid, spans in room_busy.items()}
        self.shares = self._even_shares()
        self._ranges: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._travel: dict[tuple[str, str], int] = {}

    # ---- the objective -------------------------------------------------------------------------
    def _busy_work_per_week(self, f: FacilitatorSpec) -> np.ndarray:
        minutes = np.zeros(self.weeks, dtype=np.int64)
        for b in f.busy:
            week = b.start // MINUTES_PER_WEEK
            if b.counts_as_work and 0 <= week < self.weeks:
                minutes[week] += b.end - b.start
        return minutes

    def _even_shares(self) -> dict[str, int]:
        capacity = {}
        for f in self.problem.facilitators:
            free = np.maximum(0, f.max_minutes_per_week - self.busy_work[f.facilitator_id])
            capacity[f.facilitator_id] = int(free.sum()) if f.active else 0
        demand: dict[str, int] = defaultdict(int)
        for m in self.problem.meetings:
            demand[m.county] += m.duration * m.facilitators_needed
        supply: dict[str, int] = defaultdict(int)
        for f in self.problem.facilitators:
            supply[f.county] += capacity[f.facilitator_id]
        return {f.facilitator_id: (capacity[f.facilitator_id] * demand[f.county] // supply[f.county]
                                   if supply[f.county] else 0)
                for f in self.problem.facilitators}

    def place_of(self, meeting: MeetingSpec, venue_id: str):
        return meeting.home if meeting.home is not None else self.venues[venue_id].location

    def travel_points(self, facilitator_id: str, meeting: MeetingSpec, venue_id: str) -> int:
        key = (facilitator_id, venue_id if meeting.home is None else "home:" + meeting.meeting_id)
        points = self._travel.get(key)
        if points is None:
            km = self.facilitators[facilitator_id].home.km_to(self.place_of(meeting, venue_id))
            points = self._travel[key] = round(self.weights.travel_km * km)
        return points

    def participant_points(self, meeting: MeetingSpec, venue_id: str) -> int:
        if meeting.near is None:
            return 0
        return round(self.weights.participant_km * meeting.near.km_to(self.place_of(meeting, venue_id)))

    def waiting_points(self, meeting: MeetingSpec, start: int) -> int:
        return self.weights.waiting_day * (start // MINUTES_PER_DAY - meeting.earliest // MINUTES_PER_DAY)

    def overload_points(self, facilitator_id: str, load: int) -> int:
        return self.weights.overload_hour * max(0, load - self.shares.get(facilitator_id, 0)) // 60

    def placement_points(self, p: Placement) -> int:
        """Waiting and travel of one placement (overload is scored over the whole plan)."""
        m = self.meetings[p.meeting_id]
        return (self.waiting_points(m, p.start) + self.participant_points(m, p.venue_id)
                + sum(self.travel_points(fid, m, p.venue_id) for fid in p.facilitator_ids))

    def cost(self, placements: Sequence[Placement]) -> int:
        """The objective of a complete plan (every meeting of the problem counted)."""
        placements = [p for p in placements if p.meeting_id in self.meetings]   # as the checker: unknown ids cost nothing
        placed = {p.meeting_id for p in placements}
        total = self.weights.unplaced * sum(1 for mid in self.meetings if mid not in placed)
        load: dict[str, int] = defaultdict(int)
        for p in placements:
            total += self.placement_points(p)
            for fid in p.facilitator_ids:
                load[fid] += self.meetings[p.meeting_id].duration
        return total + sum(self.overload_points(fid, minutes) for fid, minutes in load.items())

    # ---- candidate sets ------------------------------------------------------------------------
    def _windows(self, key: str, windows, duration: int):
        cached = self._ranges.get((key, duration))
        if cached is None:
            cached = self._ranges[(key, duration)] = _start_ranges(windows, duration)
        return cached

    def candidates(self, m: MeetingSpec) -> MeetingCandidates:
        """Every option for `m` that passes the rules about `m` alone, or the reasons there is none."""
        reasons: list[str] = []
        empty = MeetingCandidates(m, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), [], [], {}, reasons)
        slot = self.problem.slot_minutes
        first = max(m.earliest, 0)
        last = min(m.latest, self.horizon_end) - m.duration
        first = -(-first // slot) * slot
        if last < first:
            if m.latest - m.earliest < m.duration:
                reasons.append(f"its window is shorter than the meeting's {m.duration} minutes")
            else:
                reasons.append("its window does not fit inside the planning horizon")
            return empty
        starts = np.arange(first, last + 1, slot, dtype=np.int64)
        day_first, day_last = int(starts[0]) // MINUTES_PER_DAY, int(starts[-1]) // MINUTES_PER_DAY
        window_text = (f"day {day_first + 1} of the plan" if day_first == day_last
                       else f"days {day_first + 1}-{day_last + 1} of the plan")

        # Both checked even when the first fails, so the coordinator hears every cause at once.
        facilitators = self._facilitator_options(m, starts, reasons, window_text)
        rooms = self._room_options(m, starts, reasons) if m.home is None else []
        if facilitators is None or rooms is None:
            return empty

        # Starts where the meeting could happen at all: a room is free (or it is at home), enough
        # facilitators are free, the pinned ones among them, and every language has a speaker.
        ok = np.ones(len(starts), dtype=bool)
        if rooms:
            ok &= np.any([r.allowed for r in rooms], axis=0)
        ok &= np.sum([f.allowed for f in facilitators], axis=0) >= m.facilitators_needed
        by_id = {f.facilitator_id: f for f in facilitators}
        for pinned in m.pinned_facilitators:
            ok &= by_id[pinned].allowed
        for language in m.languages:
            speakers = [f.allowed for f in facilitators if language in self.facilitators[f.facilitator_id].languages]
            ok &= np.any(speakers, axis=0) if speakers else False
        if not ok.any():
            needed = m.facilitators_needed
            who = f"{needed} eligible facilitators" if needed > 1 else "an eligible facilitator"
            if m.languages:
                who += " who speak " + _join([language_text(x) for x in sorted(m.languages)])
            if m.pinned_facilitators:
                who += " (including " + _join(list(m.pinned_facilitators)) + ")"
            if rooms:
                reasons.append(f"no slot in the window has a free suitable room and {who} available at the same time")
            else:
                reasons.append(f"no slot in the window has {who} available")
            return empty

        starts = starts[ok]
        facilitators = [FacilitatorOption(f.facilitator_id, f.allowed[ok], f.travel)
                        for f in facilitators if f.allowed[ok].any()]
        rooms = [RoomOption(r.room_id, r.venue_id, r.capacity, r.allowed[ok]) for r in rooms if r.allowed[ok].any()]
        places = [HOME] if m.home is not None else sorted({r.venue_id for r in rooms})
        for f in facilitators:
            f.travel = {key: self.travel_points(f.facilitator_id, m, key) for key in places}
        waiting = self.weights.waiting_day * (starts // MINUTES_PER_DAY - m.earliest // MINUTES_PER_DAY)
        place_cost = {key: self.participant_points(m, key) for key in places}
        return MeetingCandidates(m, starts, waiting, facilitators, rooms, place_cost, [])

    def _why_not(self, f: FacilitatorSpec, m: MeetingSpec) -> str | None:
        """The first per-meeting rule facilitator `f` fails for `m`, as a phrase; None if none."""
        if f.county != m.county:
            return f"works in {f.county}"
        if not f.active:
            return "is inactive"
        if f.conflicts & (m.persons | {m.case_id}):
            return "has declared a conflict of interest with the case"
        if TRAINING_RANK[f.training_level] < TRAINING_RANK[m.min_training_level]:
            return f"has {f.training_level} training, it needs {m.min_training_level}"
        missing = m.required_accreditations - f.accreditations
        if missing:
            return f"lacks the {_join(sorted(missing))} accreditation"
        if f.districts and m.district and m.district not in f.districts:
            return f"does not cover the {m.district} district"
        return None

    def _facilitator_options(self, m: MeetingSpec, starts: np.ndarray, reasons: list[str],
                             window_text: str) -> list[FacilitatorOption] | None:
        needed = m.facilitators_needed
        county = m.county

        def too_few(count: int, what: str) -> str:
            if count == 0:
                return f"no facilitator {what}"
            return f"only {count} facilitator{'s' if count > 1 else ''} {what}, it needs {needed}"

        pool = [f for f in self.problem.facilitators if f.county == county]
        if not pool:
            reasons.append(f"no facilitator works in {county}")
            return None
        # Apply the per-person rules one at a time, so the reason names the one that empties the pool.
        stages = (
            (lambda f: f.active, f"is active in {county}"),
            (lambda f: not (f.conflicts & (m.persons | {m.case_id})),
             f"in {county} is free of declared conflicts with this case"),
            (lambda f: TRAINING_RANK[f.training_level] >= TRAINING_RANK[m.min_training_level],
             f"in {county} has {m.min_training_level} training"),
            (lambda f: m.required_accreditations <= f.accreditations,
             f"in {county} at that training level holds the {_join(sorted(m.required_accreditations))} accreditation"),
            (lambda f: not f.districts or not m.district or m.district in f.districts,
             f"in {county} otherwise qualified covers the {m.district} district"),
        )
        for keep, what in stages:
            pool = [f for f in pool if keep(f)]
            if len(pool) < needed:
                reasons.append(too_few(len(pool), what))
                break
        if len(set(m.pinned_facilitators)) > needed:
            reasons.append(f"it pins {len(set(m.pinned_facilitators))} facilitators but takes only {needed}")
        for pinned in m.pinned_facilitators:
            f = self.facilitators.get(pinned)
            if f is None:
                reasons.append(f"its pinned facilitator {pinned} is not known")
            elif (why := self._why_not(f, m)) is not None:
                reasons.append(f"its pinned facilitator {pinned} {why}")
        for language in sorted(m.languages):
            if not any(language in f.languages for f in pool):
                if any(language in f.languages and f.active for f in self.problem.facilitators if f.county == county):
                    reasons.append(f"no facilitator in {county} who speaks {language_text(language)} "
                                   "meets its other needs (training, accreditation, district, conflicts)")
                else:
                    reasons.append(f"no facilitator in {county} speaks {language_text(language)}")
        if reasons:
            return None

        days = starts // MINUTES_PER_DAY
        weeks = np.minimum(starts // MINUTES_PER_WEEK, self.weeks - 1)
        counts = {"vetted": 0, "available": 0, "free": 0, "hours": 0}
        options: list[FacilitatorOption] = []
        pinned_missing = []
        for f in pool:
            fid = f.facilitator_id
            vetted = days <= f.vetting_expires_day
            available = vetted & _in_ranges(starts, self._windows("f:" + fid, f.availability, m.duration))
            free = available & _clear_of(starts, m.duration, self.fac_busy[fid])
            hours = free & (self.week_minutes[fid][weeks] + m.duration <= f.max_minutes_per_week)
            for name, mask in (("vetted", vetted), ("available", available), ("free", free), ("hours", hours)):
                counts[name] += bool(mask.any())
            if hours.any():
                options.append(FacilitatorOption(fid, hours, {}))
            elif fid in m.pinned_facilitators:
                pinned_missing.append(fid)
        qualifier = []
        if m.min_training_level != "foundation":
            qualifier.append(f"with {m.min_training_level} training")
        if m.languages:
            qualifier.append("who speaks " + _join([language_text(x) for x in sorted(m.languages)]))
        who = " ".join(qualifier) if qualifier else "eligible for it"
        if counts["vetted"] < needed:
            reasons.append(("no facilitator's" if counts["vetted"] == 0 else f"only {counts['vetted']} facilitators'")
                           + f" police vetting is valid on any day in its window ({window_text})"
                           + ("" if counts["vetted"] == 0 else f", it needs {needed}"))
        elif counts["available"] < needed:
            reasons.append(too_few(counts["available"], f"{who} is available in the window ({window_text})"))
        elif counts["free"] < needed:
            reasons.append(too_few(counts["free"], f"{who} has free time in the window ({window_text}) "
                                                   "around existing bookings, leave and meetings already placed"))
        elif counts["hours"] < needed:
            reasons.append(too_few(counts["hours"], f"{who} has weekly hours left in the window ({window_text})"))
        for fid in pinned_missing:
            reasons.append(f"its pinned facilitator {fid} is not available in the window ({window_text})")
        if reasons:
            return None
        return options

    def _room_options(self, m: MeetingSpec, starts: np.ndarray, reasons: list[str]) -> list[RoomOption] | None:
        county = m.county
        if m.prison_venue_id:
            prison = self.venues.get(m.prison_venue_id)
            if prison is None or prison.county != county:
                reasons.append(f"its prison venue {m.prison_venue_id} is not a venue in {county}")
                return None
            venues = [prison]
            where = f"the prison venue {prison.venue_id}"
        else:
            venues = [v for v in self.problem.venues if v.county == county and v.kind != "prison"]
            if not venues:
                reasons.append(f"there is no venue in {county} (other than prisons)")
                return None
            where = f"no venue in {county}"
        needs = sorted(m.accessibility)
        if m.separate_waiting:
            needs.append("separate waiting rooms")
        if m.neutral_venue:
            needs.append("neutral ground")
        suitable = [v for v in venues if m.accessibility <= v.accessibility
                    and (v.separate_waiting_rooms or not m.separate_waiting) and (v.neutral or not m.neutral_venue)]
        if not suitable:
            reasons.append(f"{where} {'does not offer' if m.prison_venue_id else 'offers'} {_join(needs)}")
            return None
        seats = m.attendees + m.facilitators_needed
        sized = [(v, r) for v in suitable for r in v.rooms if r.capacity >= seats]
        if not sized:
            reasons.append(f"{'the prison venue ' + m.prison_venue_id + ' has' if m.prison_venue_id else 'no suitable venue has'}"
                           f" a room for {seats} people")
            return None
        options = []
        any_open = False
        for v, r in sized:
            open_ = _in_ranges(starts, self._windows("v:" + v.venue_id, v.opening, m.duration))
            any_open |= bool(open_.any())
            allowed = open_ & _clear_of(starts, m.duration, self.room_busy[r.room_id])
            if allowed.any():
                options.append(RoomOption(r.room_id, v.venue_id, r.capacity, allowed))
        if not any_open:
            reasons.append(f"the prison venue {m.prison_venue_id} has no opening in the window" if m.prison_venue_id
                           else "no suitable venue is open in the window")
            return None
        if not options:
            reasons.append("every suitable room is already booked throughout the window")
            return None
        return options


def taken_reason(c: MeetingCandidates) -> str:
    """Why a meeting with options was still left out: others took them."""
    count = c.option_count
    return f"every feasible slot was taken by other meetings ({count} option{'s' if count != 1 else ''})"
