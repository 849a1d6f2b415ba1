"""Synthetic scheduling instances for the allocation benchmark and the solver's tuning: a regional
restorative-justice service on the Welsh border, deterministic per seed.

    from scheduling_instances import generate, describe
    problem = generate(500, 50, 30)          # meetings, facilitators, venues; four weeks, three counties
    print(describe(problem))

What makes it realistic (and not trivially placeable):
- three counties with real centres and an uneven share of the work (45/30/25 %), 2-4 districts each,
  homes and venues scattered up to ~40 km from the centre;
- staff (30-37.5 h a week, Mon-Fri 09:00-17:30, some late evenings, existing bookings and leave) and
  volunteers (4-6 h a week in a few half-day windows, evenings and Saturdays); advanced practitioners
  are scarce and mostly staff; Welsh speakers are commoner in the north and west; some vetting expires
  mid-horizon, some has already expired; a few inactive; a few specialist accreditations; declared
  conflicts with people and cases that really appear in the meetings;
- venues: community rooms, schools, police stations and probation offices (only the first two are
  neutral ground), 1-2 prisons a county open weekdays 09:30-16:00 only; rooms of 4-20 seats already
  partly booked; separate waiting rooms on ~40 %; accessibility features; an hourly cost;
- meetings grouped in cases: preparation visits (half at home), indirect sessions, co-facilitated
  conferences on neutral ground, pre-prison visits pinned to a prison, supervision with a pinned
  supervisor; 1-3 week windows; training, Welsh, accessibility and accreditation needs; facilitators
  already allocated on ~20 % of cases.
"""
from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import replace

from mend_scheduling.domain.planning import (
    MINUTES_PER_DAY, Busy, FacilitatorSpec, MeetingSpec, PlanningProblem, Point, RoomSpec, VenueSpec, Window,
)
from mend_scheduling.domain.vocabulary import ACCESSIBILITY_FEATURES, DEFAULT_MINUTES, TRAINING_RANK

# name, centre, share of the work, districts (name, offset from the centre in km east, km north), chance a
# facilitator / a meeting speaks / needs Welsh.
COUNTIES = (
    ("gwent", Point(51.66, -2.98), 0.45,
     (("newport", 4, -14), ("cwmbran", -2, 0), ("abergavenny", 0, 20), ("ebbw-vale", -20, 6)), 0.06, 0.04),
    ("dyfed-powys", Point(52.05, -3.95), 0.30,
     (("carmarthen", -25, -20), ("aberystwyth", -10, 35), ("llandrindod", 40, 10), ("brecon", 30, -15)), 0.28, 0.12),
    ("north-wales", Point(53.12, -3.55), 0.25,
     (("wrexham", 30, -5), ("bangor", -35, 10), ("rhyl", 5, 18)), 0.38, 0.18),
    # Only used when asked for more than three counties.
    ("south-wales", Point(51.58, -3.55), 0.20,
     (("cardiff", 28, -5), ("swansea", -30, 5), ("bridgend", -5, -3)), 0.10, 0.05),
    ("west-mercia", Point(52.30, -2.60), 0.15,
     (("hereford", -5, -25), ("shrewsbury", -10, 30), ("worcester", 20, -15)), 0.02, 0.01),
)
OTHER_LANGUAGES = ("pl", "ur", "pa", "ar", "ro", "bn", "so", "bsl")
ACCREDITATIONS = ("sexual_harm", "domestic_abuse")
KIND_MIX = (("preparation_visit", 0.40), ("indirect_session", 0.20), ("conference", 0.20),
            ("pre_prison_visit", 0.10), ("supervision", 0.10))
VENUE_MIX = (("community_room", 0.35), ("police_station", 0.22), ("probation_office", 0.25), ("school", 0.18))
NEUTRAL_KINDS = frozenset({"community_room", "school"})
FEATURE_SHARE = {"step_free": 0.6, "hearing_loop": 0.35, "accessible_toilet": 0.5, "quiet_room": 0.3,
                 "large_print": 0.2, "parking": 0.55}
assert set(FEATURE_SHARE) == set(ACCESSIBILITY_FEATURES)

H = 60  # minutes in an hour


def _offset(centre: Point, east_km: float, north_km: float) -> Point:
    return Point(round(centre.lat + north_km / 111.0, 5),
                 round(centre.lon + east_km / (111.0 * math.cos(math.radians(centre.lat))), 5))


def _scatter(rng: random.Random, centre: Point, radius_km: float) -> Point:
    r = radius_km * math.sqrt(rng.random())
    a = rng.uniform(0, 2 * math.pi)
    return _offset(centre, r * math.cos(a), r * math.sin(a))


def _pick(rng: random.Random, mix) -> str:
    x = rng.random() * sum(w for _, w in mix)
    for name, w in mix:
        x -= w
        if x < 0:
            return name
    return mix[-1][0]


def _split(total: int, shares: list[float]) -> list[int]:
    """Largest-remainder split of total by shares, every part >= 1 when total allows."""
    s = sum(shares)
    raw = [total * w / s for w in shares]
    parts = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)[: total - sum(parts)]:
        parts[i] += 1
    for i, p in enumerate(parts):  # nobody empty if it can be helped
        if p == 0 and total >= len(parts):
            j = max(range(len(parts)), key=lambda k: parts[k])
            parts[j] -= 1
            parts[i] = 1
    return parts


def _weekly(days: int, pattern: dict[int, list[tuple[int, int]]]) -> tuple[Window, ...]:
    """Expand {weekday: [(start_min, end_min) in the day]} over the horizon, in time order."""
    out = []
    for day in range(days):
        for s, e in pattern.get(day % 7, ()):
            out.append(Window(day * MINUTES_PER_DAY + s, day * MINUTES_PER_DAY + e))
    return tuple(out)


def _bookings(rng: random.Random, windows, per_window: float, lengths: tuple[int, ...],
              counts_as_work: bool = True) -> list[Busy]:
    """Existing bookings inside some of the given windows, on the half-hour."""
    out = []
    for w in windows:
        if rng.random() >= per_window:
            continue
        length = rng.choice(lengths)
        if w.end - w.start < length:
            continue
        start = w.start + 30 * rng.randrange((w.end - w.start - length) // 30 + 1)
        out.append(Busy(start, start + length, counts_as_work))
    return out


# ---------------------------------------------------------------------------------------------------
def _facilitators(rng, n, counties, days):
    shares = [c[2] for c in counties]
    per_county = _split(n, shares)
    staff_level = (("foundation", 0.10), ("practitioner", 0.50), ("advanced", 0.40))
    volunteer_level = (("foundation", 0.55), ("practitioner", 0.40), ("advanced", 0.05))
    out = []
    k = 0
    for (county, centre, _, districts, welsh_share, _), count in zip(counties, per_county):
        district_names = [d[0] for d in districts]
        staff_flags = [i < round(0.45 * count) for i in range(count)]   # 45 % staff in every county
        rng.shuffle(staff_flags)
        for staff in staff_flags:
            k += 1
            fid = f"f-{k:03d}"
            if staff:
                late = {d: [(9 * H, 21 * H)] for d in rng.sample(range(5), rng.choice((0, 0, 1, 2)))}
                pattern = {d: late.get(d, [(9 * H, 17 * H + 30)]) for d in range(5)}
                cap = rng.choice((30, 32, 35, 37, 37)) * H + rng.choice((0, 30))
                cap = min(cap, 37 * H + 30)
                level = _pick(rng, staff_level)
                district_cover = frozenset() if rng.random() < 0.6 else frozenset(rng.sample(district_names, 2))
            else:
                slots = [(d, (9 * H, 13 * H)) for d in range(5)] + [(d, (13 * H, 17 * H)) for d in range(5)] \
                    + [(d, (17 * H + 30, 21 * H)) for d in range(5)] + [(5, (9 * H + 30, 13 * H + 30))] * 3
                pattern = {}
                for d, span in rng.sample(slots, rng.choice((2, 2, 3, 3, 4))):
                    if span not in pattern.setdefault(d, []):
                        pattern[d].append(span)
                for spans in pattern.values():
                    spans.sort()
                cap = rng.choice((4, 4.5, 5, 5.5, 6)) * H
                level = _pick(rng, volunteer_level)
                district_cover = frozenset() if rng.random() < 0.2 else frozenset(
                    rng.sample(district_names, rng.choice((1, 1, 2))))
            availability = _weekly(days, pattern)
            # Existing work: staff carry other casework (8-18 h a week); volunteers now and then.
            busy = _bookings(rng, availability, 0.55 if staff else 0.12, (90, 120, 150, 180, 240) if staff else (90, 120))
            if rng.random() < (0.18 if staff else 0.10):   # leave: 2-5 consecutive days
                first = rng.randrange(days)
                busy.append(Busy(first * MINUTES_PER_DAY, (first + rng.randint(2, 5)) * MINUTES_PER_DAY, False))
            busy.sort(key=lambda b: b.start)
            x = rng.random()
            if x < 0.03:
                vetting = -rng.randint(1, 30)
            elif x < 0.13:
                vetting = rng.randint(days // 4, (3 * days) // 4)
            else:
                vetting = days + rng.randint(30, 700)
            languages = {"en"}
            if rng.random() < welsh_share:
                languages.add("cy")
                if district_cover and rng.random() < 0.5:   # Welsh speakers are asked for county-wide
                    district_cover = frozenset()
            if rng.random() < 0.07:
                languages.add(rng.choice(OTHER_LANGUAGES))
            accreditations = set()
            senior = staff and level == "advanced"
            for acc, p_senior, p_other in (("sexual_harm", 0.30, 0.02), ("domestic_abuse", 0.35, 0.04)):
                if rng.random() < (p_senior if senior else p_other):
                    accreditations.add(acc)
            if district_cover:
                anchor = next(d for d in districts if d[0] == sorted(district_cover)[0])
                home = _scatter(rng, _offset(centre, anchor[1], anchor[2]), 15)
            else:
                home = _scatter(rng, centre, 40)
            out.append(FacilitatorSpec(
                facilitator_id=fid, county=county, kind="staff" if staff else "volunteer", home=home,
                training_level=level, vetting_expires_day=vetting, max_minutes_per_week=int(cap),
                availability=availability, busy=tuple(busy), languages=frozenset(languages),
                accreditations=frozenset(accreditations), districts=district_cover,
                active=rng.random() >= 0.04))
    # Every county has a few advanced practitioners (a service that has none cannot take serious cases).
    for county, *_ in counties:
        local = [i for i, f in enumerate(out) if f.county == county and f.active]
        need = max(2, len(local) // 6) - sum(out[i].training_level == "advanced" for i in local)
        for i in [i for i in local if out[i].kind == "staff" and out[i].training_level == "practitioner"][:max(0, need)]:
            out[i] = replace(out[i], training_level="advanced")
    return out


def _venues(rng, n, counties, days):
    per_county = _split(n, [c[2] for c in counties])
    out = []
    k = 0
    for (county, centre, _, districts, _, _), count in zip(counties, per_county):
        prisons = 0 if count < 3 else (1 if count < 8 else rng.choice((1, 2)))
        kinds = ["prison"] * prisons
        # At least one neutral venue in each county, then the usual mix.
        kinds += ["community_room"] * min(count - prisons, 1 if count < 6 else 2)
        while len(kinds) < count:
            kinds.append(_pick(rng, VENUE_MIX))
        for i, kind in enumerate(kinds):
            k += 1
            district = districts[i % len(districts)]
            location = _scatter(rng, _offset(centre, district[1], district[2]), 12)
            hub = False
            if kind == "prison":
                pattern = {d: [(9 * H + 30, 16 * H)] for d in range(5)}
                rooms_n = rng.choice((1, 2))
                waiting = True
                cost = 0
            elif kind == "community_room":
                pattern = {d: [(9 * H, 21 * H)] for d in range(5)}
                if rng.random() < 0.5:
                    pattern[5] = [(9 * H, 13 * H)]
                rooms_n = rng.choice((1, 2, 2, 3))
                hub = i < prisons + 2   # the county's main community hubs: separate waiting rooms, step-free
                waiting = hub or rng.random() < 0.6
                cost = rng.randrange(1500, 3600, 100)
            elif kind == "school":     # after school hours, some Saturdays
                pattern = {d: [(16 * H, 21 * H)] for d in range(5)}
                if rng.random() < 0.4:
                    pattern[5] = [(9 * H, 16 * H)]
                rooms_n = rng.choice((1, 2, 3, 4))
                waiting = rng.random() < 0.35
                cost = rng.randrange(1000, 2600, 100)
            elif kind == "police_station":
                pattern = {d: [(8 * H, 20 * H)] for d in range(5)}
                pattern[5] = [(9 * H, 17 * H)]
                rooms_n = rng.choice((1, 1, 2))
                waiting = rng.random() < 0.35
                cost = 0
            else:  # probation office
                late = rng.randrange(5)
                pattern = {d: [(9 * H, 19 * H if d == late else 17 * H)] for d in range(5)}
                rooms_n = rng.choice((1, 2, 3))
                waiting = rng.random() < 0.3
                cost = 0
            opening = _weekly(days, pattern)
            rooms = []
            for r in range(rooms_n):
                capacity = rng.choice((4, 4, 6, 6, 8, 10, 12, 16, 20))
                if r == 0 and kind == "community_room" and hub:   # a hub has a conference room
                    capacity = max(capacity, rng.choice((12, 16, 20)))
                booked = _bookings(rng, opening, 0.35, (60, 90, 120, 180, 240))
                rooms.append(RoomSpec(f"v-{k:03d}-r{r + 1}", capacity, tuple(sorted(booked, key=lambda b: b.start))))
            features = {f for f, p in FEATURE_SHARE.items() if rng.random() < p}
            if kind == "community_room" and hub:
                features |= {"step_free", "accessible_toilet"}
            if kind == "prison":
                features |= {"step_free"} if rng.random() < 0.5 else set()
            out.append(VenueSpec(
                venue_id=f"v-{k:03d}", county=county, kind=kind, location=location, rooms=tuple(rooms),
                opening=opening, neutral=kind in NEUTRAL_KINDS, separate_waiting_rooms=waiting,
                accessibility=frozenset(features), cost_per_hour_pence=cost, district=district[0]))
    return out


def _eligible(f: FacilitatorSpec, county: str, level: str, languages, accreditations, district: str, last_day: int):
    return (f.active and f.county == county and TRAINING_RANK[f.training_level] >= TRAINING_RANK[level]
            and languages <= f.languages and accreditations <= f.accreditations
            and (not f.districts or not district or district in f.districts) and f.vetting_expires_day >= last_day)


def _meetings(rng, n, counties, days, facilitators, venues):
    per_county = _split(n, [c[2] for c in counties])
    horizon_end = days * MINUTES_PER_DAY
    out = []
    k = case_no = person_no = 0
    for (county, centre, _, districts, _, welsh_need), count in zip(counties, per_county):
        staff = [f for f in facilitators if f.county == county]
        prisons = [v.venue_id for v in venues if v.county == county and v.kind == "prison"] \
            or [v.venue_id for v in venues if v.kind == "prison"]
        spoken = sorted({lang for f in staff for lang in f.languages} - {"en", "cy"})
        made = 0
        while made < count:
            # A case: its people, where they live, its needs; then one to four meetings of it.
            case_no += 1
            case_id = f"case-{case_no}"
            welsh = rng.random() < welsh_need
            if welsh:   # Welsh is asked for where Welsh speakers live (and facilitators who speak it work)
                served = [d for d in districts if any("cy" in f.languages and f.active and (not f.districts or d[0] in f.districts)
                                                      for f in staff)]
                district = rng.choice(served or districts)
            else:
                district = rng.choice(districts)
            near = _scatter(rng, _offset(centre, district[1], district[2]), 15)
            persons = []
            for _ in range(rng.choice((2, 2, 3, 4))):
                person_no += 1
                persons.append(f"p-{person_no}")
            x = rng.random()
            level = "advanced" if x < 0.10 else "practitioner" if x < 0.50 else "foundation"
            languages = set()
            if welsh:
                languages.add("cy")
            if rng.random() < 0.02:
                languages.add(rng.choice(spoken) if spoken and rng.random() < 0.9 else rng.choice(OTHER_LANGUAGES))
            access = set()
            if rng.random() < 0.15:
                access.add("step_free" if rng.random() < 0.7 else rng.choice(ACCESSIBILITY_FEATURES))
                if rng.random() < 0.3:
                    access.add(rng.choice(ACCESSIBILITY_FEATURES))
            accreditations = set()
            if level == "advanced" and rng.random() < 0.5:
                held = sorted({a for f in staff if f.active and f.training_level == "advanced"
                               and f.vetting_expires_day >= days for a in f.accreditations})
                if held and rng.random() < 0.9:
                    accreditations.add(rng.choice(held))
                elif rng.random() < 0.5:
                    accreditations.add(rng.choice(ACCREDITATIONS))
            separate = rng.random() < 0.5
            pinned_case = ()
            if rng.random() < 0.20:   # a facilitator already allocated on the case
                pin_level = level if level == "advanced" else "practitioner"   # an allocated case worker
                pool = [f for f in staff if _eligible(f, county, pin_level, languages, accreditations, district[0], 0)]
                if pool:
                    pinned_case = (rng.choice(pool).facilitator_id,)
            for _ in range(min(count - made, rng.choice((1, 1, 2, 2, 3, 4)))):
                made += 1
                k += 1
                kind = _pick(rng, KIND_MIX)
                span = rng.randint(7, 21)
                first = rng.randrange(max(1, days - span + 1))
                earliest = first * MINUTES_PER_DAY
                latest = min(horizon_end, (first + span) * MINUTES_PER_DAY)
                m = dict(meeting_id=f"m-{k:04d}", case_id=case_id, county=county, kind=kind,
                         duration=DEFAULT_MINUTES[kind], earliest=earliest, latest=latest,
                         min_training_level=level, languages=frozenset(languages), accessibility=frozenset(access),
                         persons=frozenset(persons), pinned_facilitators=pinned_case,
                         required_accreditations=frozenset(accreditations), near=near, district=district[0])
                if kind == "preparation_visit":
                    m["attendees"] = rng.choice((1, 1, 2))
                    m["persons"] = frozenset(rng.sample(persons, 1))
                    if rng.random() < 0.5:
                        m["home"] = _scatter(rng, near, 3)
                        m["accessibility"] = frozenset()
                elif kind == "indirect_session":
                    m["attendees"] = rng.choice((1, 2))
                    m["persons"] = frozenset(rng.sample(persons, 1))
                elif kind == "conference":
                    m["facilitators_needed"] = 2
                    m["neutral_venue"] = True
                    m["separate_waiting"] = separate or rng.random() < 0.2
                    m["attendees"] = len(persons) + rng.choice((0, 1, 1, 2, 2, 3, 4, 6))   # parties and supporters
                    if TRAINING_RANK[level] < TRAINING_RANK["practitioner"]:
                        m["min_training_level"] = "practitioner"
                elif kind == "pre_prison_visit":
                    if not prisons:
                        m["kind"] = "preparation_visit"
                        m["duration"] = DEFAULT_MINUTES["preparation_visit"]
                    else:
                        m["prison_venue_id"] = rng.choice(prisons)
                        m["attendees"] = 1
                        m["persons"] = frozenset(rng.sample(persons, 1))
                        m["accessibility"] = frozenset()
                        m["facilitators_needed"] = 2 if rng.random() < 0.3 else 1
                        if TRAINING_RANK[level] < TRAINING_RANK["practitioner"]:
                            m["min_training_level"] = "practitioner"
                else:  # supervision: a supervisor (senior staff of the county) is pinned
                    pool = [f for f in staff if f.active and f.kind == "staff" and f.vetting_expires_day >= days]
                    seniors = [f for f in pool if f.training_level == "advanced"] or pool \
                        or [f for f in staff if f.active]
                    if not seniors:
                        m["kind"] = "indirect_session"
                        m["duration"] = DEFAULT_MINUTES["indirect_session"]
                    else:
                        sup = rng.choice(seniors)
                        m.update(min_training_level="foundation", languages=frozenset(), accessibility=frozenset(),
                                 required_accreditations=frozenset(), persons=frozenset(), attendees=0,
                                 pinned_facilitators=(sup.facilitator_id,),
                                 facilitators_needed=2 if rng.random() < 0.5 else 1,
                                 district=sorted(sup.districts)[0] if sup.districts else "", near=None)
                if m["pinned_facilitators"] and len(m["pinned_facilitators"]) > m.get("facilitators_needed", 1):
                    m["pinned_facilitators"] = m["pinned_facilitators"][:1]
                out.append(MeetingSpec(**m))
    return out


def _add_conflicts(rng, facilitators, meetings):
    """~8 % of facilitators declare a conflict with a person or a case in their county's meetings
    (never one they are pinned to)."""
    out = []
    for f in facilitators:
        if rng.random() < 0.08:
            local = [m for m in meetings if m.county == f.county and f.facilitator_id not in m.pinned_facilitators
                     and m.persons]
            if local:
                conflicts = set()
                for _ in range(rng.choice((1, 1, 2))):
                    m = rng.choice(local)
                    conflicts.add(m.case_id if rng.random() < 0.5 else rng.choice(sorted(m.persons)))
                f = replace(f, conflicts=frozenset(conflicts))
        out.append(f)
    # A declared conflict overrides an allocation on the case: drop such pins (the service would too).
    by_id = {f.facilitator_id: f for f in out}
    fixed = []
    for m in meetings:
        pins = tuple(p for p in m.pinned_facilitators
                     if not (by_id[p].conflicts & (m.persons | {m.case_id})))
        fixed.append(m if pins == m.pinned_facilitators else replace(m, pinned_facilitators=pins))
    return out, fixed


def generate(meetings: int, facilitators: int, venues: int, *, weeks: int = 4, counties: int = 3,
             seed: int = 0) -> PlanningProblem:
    """A planning problem of the given size, the same for the same arguments."""
    if not 1 <= counties <= len(COUNTIES):
        raise ValueError(f"counties must be 1..{len(COUNTIES)}")
    rng = random.Random(seed)
    chosen = COUNTIES[:counties]
    days = 7 * weeks
    people = _facilitators(rng, facilitators, chosen, days)
    places = _venues(rng, venues, chosen, days)
    work = _meetings(rng, meetings, chosen, days, people, places)
    people, work = _add_conflicts(rng, people, work)
    return PlanningProblem(horizon_days=days, meetings=tuple(work), facilitators=tuple(people),
                           venues=tuple(places))


def describe(problem: PlanningProblem) -> str:
    """One line: what is in the instance."""
    days = problem.horizon_days
    fs, ms, vs = problem.facilitators, problem.meetings, problem.venues
    per_county = Counter(m.county for m in ms)
    counties = ", ".join(f"{c} {per_county[c]}m/{sum(f.county == c for f in fs)}f/{sum(v.county == c for v in vs)}v"
                         for c in sorted(per_county, key=lambda c: -per_county[c]))
    kinds = Counter(m.kind for m in ms)
    kinds_text = " ".join(f"{k.split('_')[0]} {n}" for k, n in kinds.most_common())
    demand_h = sum(m.duration * m.facilitators_needed for m in ms) / 60
    weeks = -(-days // 7)
    supply_h = sum(max(0, f.max_minutes_per_week - sum(b.end - b.start for b in f.busy
                                                        if b.counts_as_work and b.start // (7 * MINUTES_PER_DAY) == w))
                   for f in fs if f.active for w in range(weeks)) / 60
    return (f"{len(ms)} meetings ({kinds_text}; {sum(m.home is not None for m in ms)} at home, "
            f"{sum('cy' in m.languages for m in ms)} in Welsh, {sum(bool(m.pinned_facilitators) for m in ms)} pinned), "
            f"{len(fs)} facilitators ({sum(f.kind == 'staff' for f in fs)} staff, "
            f"{sum(f.training_level == 'advanced' for f in fs)} advanced, {sum('cy' in f.languages for f in fs)} Welsh, "
            f"vetting {sum(0 <= f.vetting_expires_day < days for f in fs)} expiring/"
            f"{sum(f.vetting_expires_day < 0 for f in fs)} expired, {sum(not f.active for f in fs)} inactive, "
            f"{sum(bool(f.conflicts) for f in fs)} with conflicts), {len(vs)} venues "
            f"({sum(v.kind == 'prison' for v in vs)} prisons, {sum(len(v.rooms) for v in vs)} rooms); "
            f"{days} days; {counties}; facilitator hours {demand_h:.0f} needed / {supply_h:.0f} free")


if __name__ == "__main__":
    import sys
    import time
    sizes = [int(x) for x in (sys.argv[1:4] or (500, 50, 30))]
    t = time.perf_counter()
    p = generate(*sizes)
    print(f"built in {time.perf_counter() - t:.2f} s: {describe(p)}")
