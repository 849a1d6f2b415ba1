"""Use cases of the scheduling service: keep facilitators and venues, take meeting requests,
propose an optimised allocation, book, move and cancel meetings, and serve calendars.

Every booking, whether from an accepted proposal, by hand or a move, passes the same checks:
every hard rule of the allocation (the independent checker, with every other live booking as
time already taken), no double booking (checked again under row locks on the facilitators and
the room), and the risk service's safety gate for any meeting with participants. Every call is
scoped to the caller's county and role, and audited."""
from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Sequence

from prometheus_client import Counter, Histogram

from mend_common.auth import Principal
from mend_common.envelope import Envelope, new_event
from mend_common.errors import (ConcurrentChange, FailedPrecondition, FieldViolation, NotFound, PermissionDenied,
                                ValidationFailed, Violations)

from ..domain import allocation, checker
from ..domain.calendar import facilitator_feed, meeting_invitation
from ..domain.horizon import LOCAL, Horizon, plan_measures, problem as build_problem
from ..domain.planning import Placement, Plan
from ..domain.records import Facilitator, Meeting, MeetingRequest, Venue
from ..domain.vocabulary import MEETING_KINDS
from . import validation
from .ports import CaseDirectory, SafetyGate

log = logging.getLogger(__name__)
SERVICE = "scheduling"
BOOKINGS = Counter("mend_scheduling_bookings_total", "Meeting bookings, moves and cancellations",
                   ["county", "action"])
REFUSED = Counter("mend_scheduling_bookings_refused_total", "Bookings refused", ["reason"])
SOLVES = Histogram("mend_scheduling_solve_seconds", "Allocation runs' wall time", ["kind"],
                   buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120))
PLACED = Counter("mend_scheduling_proposed_total", "Meetings an allocation run placed or could not place",
                 ["county", "outcome"])

MAX_WEEKS = 8
MAX_PROPOSAL_REQUESTS = 1000
WRITERS = ("coordinator", "manager")
READERS = ("coordinator", "manager", "auditor")


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Settings:
    organizer_email: str = "scheduling@mend.invalid"
    calendar_secret: bytes = b""
    solver_workers: int = 2


# -- who may do what ----------------------------------------------------------------------------
def _staff(principal: Principal, *roles: str) -> None:
    if principal.kind != "staff" or not principal.has_any_role(*roles):
        raise PermissionDenied("this call needs one of the roles: " + ", ".join(roles))


def _county(principal: Principal, county: str, *roles: str) -> str:
    _staff(principal, *roles)
    if not county:
        if len(principal.counties) == 1:
            return next(iter(principal.counties))
        raise validation_error("county", "is required when you cover several counties")
    if county not in principal.counties:
        # Another county's data does not exist as far as this caller can tell.
        raise NotFound(f"county {county} not found")
    return county


def validation_error(field: str, rule: str) -> ValidationFailed:
    return ValidationFailed([FieldViolation(field, rule)])


class Refusal(NotFound):
    """NOT_FOUND for something the caller may not see, raised inside a unit of work (which then
    rolls back): `audited_refusals` records it in a unit of work of its own."""

    def __init__(self, principal: str, action: str, kind: str, resource_id: str, message: str):
        super().__init__(message)
        self.principal, self.action, self.kind, self.resource_id = principal, action, kind, resource_id


def audited_refusals(fn):
    @functools.wraps(fn)
    def wrapper(uow_factory, *args, **kwargs):
        try:
            return fn(uow_factory, *args, **kwargs)
        except Refusal as refusal:
            with uow_factory() as uow:
                uow.audit(refusal.principal, refusal.action, refusal.kind, refusal.resource_id, None)
            raise NotFound(refusal.message) from None
    return wrapper


def _refuse(uow_factory: Callable, principal: Principal, action: str, kind: str, resource_id: str) -> NotFound:
    with uow_factory() as uow:
        uow.audit(principal.label, f"{action}_refused", kind, resource_id, None)
    return NotFound(f"{kind} {resource_id} not found")


def _can_write(principal: Principal, county: str) -> bool:
    return principal.kind == "staff" and principal.has_any_role(*WRITERS) and county in principal.counties


def _can_read_meeting(principal: Principal, m: Meeting) -> bool:
    if principal.kind != "staff" or m.county not in principal.counties:
        return False
    if principal.has_any_role(*READERS):
        return True
    return principal.has_any_role("facilitator") and principal.subject in m.facilitator_ids


def _publish(uow, m: Meeting, event_type: str, venue: Venue | None, reason: str = "") -> None:
    # Supervision belongs to no case and has no participants: nobody outside Mend is told.
    if not m.case_id:
        return
    payload = {
        "meeting_id": m.meeting_id, "case_id": m.case_id, "request_id": m.request_id, "kind": m.kind,
        "starts_at": m.starts_at.isoformat(), "ends_at": m.ends_at.isoformat(),
        "venue_name": venue.name if venue else ("Participant's home" if not m.venue_id else ""),
        "venue_address": venue.address if venue else "", "participant_ids": list(m.participant_ids),
        "facilitator_ids": list(m.facilitator_ids), "sequence": m.sequence}
    if reason:
        payload["reason"] = reason
    uow.publish(new_event(SERVICE, event_type, m.county, payload))


# -- facilitators -------------------------------------------------------------------------------
@audited_refusals
def save_facilitator(uow_factory: Callable, principal: Principal, data: dict) -> Facilitator:
    county = _county(principal, data.get("county", ""), *WRITERS)
    v = Violations()
    facilitator_id = data.get("facilitator_id") or ""
    expected = data.get("version", 0)
    if facilitator_id:
        facilitator_id = v.uuid("facilitator_id", facilitator_id)
        if not isinstance(expected, int) or expected < 1:
            v.add("version", "must be the version you read, to update a facilitator")
    v.raise_if_any()
    at = _now()
    with uow_factory() as uow:
        if facilitator_id:
            current = uow.repo.facilitator(facilitator_id)
            if current is None or current.county != county:
                raise Refusal(principal.label, "facilitator.update_refused", "facilitator", facilitator_id,
                              f"facilitator {facilitator_id} not found")
            if current.version != expected:
                raise ConcurrentChange(f"facilitator {facilitator_id} is at version {current.version}, "
                                       f"not {expected}: read it again")
            record = validation.facilitator(v, data, facilitator_id=facilitator_id, county=county,
                                            version=current.version + 1)
        else:
            record = validation.facilitator(v, data, facilitator_id=validation.new_id(), county=county, version=1)
        v.raise_if_any()
        uow.repo.save_facilitator(record, at, principal.label)
        uow.audit(principal.label, "facilitator.save", "facilitator", record.facilitator_id, county)
    return record


@audited_refusals
def get_facilitator(uow_factory: Callable, principal: Principal, facilitator_id: str) -> tuple[Facilitator, int]:
    """The record and the minutes booked this week (their current load)."""
    v = Violations()
    facilitator_id = v.uuid("facilitator_id", facilitator_id)
    v.raise_if_any()
    with uow_factory() as uow:
        f = uow.repo.facilitator(facilitator_id)
        own = principal.kind == "staff" and principal.subject == facilitator_id
        if f is None or f.county not in principal.counties or not (own or principal.has_any_role(*READERS)) \
                or principal.kind != "staff":
            raise Refusal(principal.label, "facilitator.read_refused", "facilitator", facilitator_id,
                          f"facilitator {facilitator_id} not found")
        monday = _monday(_now().astimezone(LOCAL).date())
        week = Horizon.weeks_from(monday, 1)
        load = uow.repo.load_minutes([facilitator_id], week.instant_of(0), week.instant_of(week.minutes))
        uow.audit(principal.label, "facilitator.read", "facilitator", facilitator_id, f.county)
    return f, load[facilitator_id]


@audited_refusals
def list_facilitators(uow_factory: Callable, principal: Principal, county: str,
                      include_inactive: bool = False) -> list[Facilitator]:
    county = _county(principal, county, *READERS)
    with uow_factory() as uow:
        found = uow.repo.facilitators(county, include_inactive=include_inactive)
        uow.audit(principal.label, "facilitator.list", "facilitator", None, county)
    return found


@audited_refusals
def facilitator_records(uow_factory: Callable, caller: Principal, county: str,
                        facilitator_ids: Sequence[str]) -> list[dict]:
    """For the cases service's allocation: the records it checks (county, active, vetting,
    training). Unknown ids and other counties' facilitators are simply absent."""
    if caller.kind != "service" or not caller.covers(county):
        raise PermissionDenied("facilitator records are for Mend services acting for the county")
    ids = [str(f) for f in facilitator_ids][:200]
    v = Violations()
    ids = [v.uuid(f"facilitator_ids[{i}]", f) for i, f in enumerate(ids)]
    if v:
        return []
    with uow_factory() as uow:
        found = uow.repo.facilitators(county, include_inactive=True, ids=ids)
        uow.audit(caller.label, "facilitator.records_read", "facilitator", None, county)
    return [{"facilitator_id": f.facilitator_id, "county": f.county, "active": f.active,
             "vetting_expires_on": f.vetting_expires_on.isoformat(), "training_level": f.training_level,
             "name": f.name} for f in found]


# -- venues -------------------------------------------------------------------------------------
@audited_refusals
def save_venue(uow_factory: Callable, principal: Principal, data: dict) -> Venue:
    county = _county(principal, data.get("county", ""), *WRITERS)
    v = Violations()
    venue_id = data.get("venue_id") or ""
    expected = data.get("version", 0)
    if venue_id:
        venue_id = v.uuid("venue_id", venue_id)
        if not isinstance(expected, int) or expected < 1:
            v.add("version", "must be the version you read, to update a venue")
    v.raise_if_any()
    with uow_factory() as uow:
        if venue_id:
            current = uow.repo.venue(venue_id)
            if current is None or current.county != county:
                raise Refusal(principal.label, "venue.update_refused", "venue", venue_id,
                              f"venue {venue_id} not found")
            if current.version != expected:
                raise ConcurrentChange(f"venue {venue_id} is at version {current.version}, not {expected}")
            record = validation.venue(v, data, venue_id=venue_id, county=county, version=current.version + 1,
                                      existing_rooms=current.rooms)
        else:
            record = validation.venue(v, data, venue_id=validation.new_id(), county=county, version=1)
        v.raise_if_any()
        uow.repo.save_venue(record, _now(), principal.label)
        uow.audit(principal.label, "venue.save", "venue", record.venue_id, county)
    return record


@audited_refusals
def get_venue(uow_factory: Callable, principal: Principal, venue_id: str) -> Venue:
    _staff(principal, *READERS, "facilitator")
    v = Violations()
    venue_id = v.uuid("venue_id", venue_id)
    v.raise_if_any()
    with uow_factory() as uow:
        found = uow.repo.venue(venue_id)
        if found is None or found.county not in principal.counties:
            raise Refusal(principal.label, "venue.read_refused", "venue", venue_id,
                          f"venue {venue_id} not found")
        uow.audit(principal.label, "venue.read", "venue", venue_id, found.county)
    return found


@audited_refusals
def list_venues(uow_factory: Callable, principal: Principal, county: str) -> list[Venue]:
    county = _county(principal, county, *READERS, "facilitator")
    with uow_factory() as uow:
        found = uow.repo.venues(county)
        uow.audit(principal.label, "venue.list", "venue", None, county)
    return found


# -- meeting requests ---------------------------------------------------------------------------
@audited_refusals
def request_meeting(uow_factory: Callable, cases: CaseDirectory, principal: Principal, data: dict) -> MeetingRequest:
    county = _county(principal, data.get("county", ""), *WRITERS)
    v = Violations()
    kind = data.get("kind", "")
    if kind not in MEETING_KINDS:
        v.add("kind", "must be one of " + ", ".join(MEETING_KINDS))
    case_id = data.get("case_id") or ""
    if kind == "supervision":
        if case_id:
            v.add("case_id", "must be empty for supervision")
    else:
        case_id = v.uuid("case_id", case_id)
    earliest, latest = data.get("earliest"), data.get("latest")
    if not isinstance(earliest, datetime):
        v.add("earliest", "is required: the first time the meeting may start")
    if not isinstance(latest, datetime):
        v.add("latest", "is required: the time the meeting must be over by")
    for name, when in (("earliest", earliest), ("latest", latest)):
        if isinstance(when, datetime) and not validation.plannable(when):
            v.add(name, f"must be within {validation.MAX_DAYS_AHEAD} days from today")
    if isinstance(earliest, datetime) and isinstance(latest, datetime):
        if latest <= earliest:
            v.add("latest", "must be after earliest")
        elif latest - earliest > timedelta(weeks=MAX_WEEKS):
            v.add("latest", f"must be within {MAX_WEEKS} weeks of earliest")
        if latest <= _now():
            v.add("latest", "is in the past")
    needs = validation.meeting_needs(v, data, kind)
    v.raise_if_any()
    allocated: tuple[str, ...] = ()
    if kind == "supervision":
        with uow_factory() as uow:
            known = {f.facilitator_id for f in uow.repo.facilitators(county, ids=needs.supervisee_ids)}
        for i, f in enumerate(needs.supervisee_ids):
            if f not in known:
                v.add(f"supervisee_ids[{i}]", "must be an active facilitator of the county")
    else:
        parties = cases.parties(county, case_id)
        if parties is None:
            raise _refuse(uow_factory, principal, "meeting_request.create", "case", case_id)
        for i, p in enumerate(needs.participant_ids):
            if p not in parties.participant_ids:
                v.add(f"participant_ids[{i}]", "must be a participant of the case")
            elif p in parties.stopped_participant_ids:
                v.add(f"participant_ids[{i}]", "has withdrawn consent or had their process stopped")
        allocated = parties.facilitator_ids
    if needs.prison_venue_id:
        with uow_factory() as uow:
            prison = uow.repo.venue(needs.prison_venue_id)
        if prison is None or prison.county != county or prison.kind != "prison":
            v.add("prison_venue_id", "must be a prison venue of the county")
    v.raise_if_any()
    request = MeetingRequest(
        request_id=validation.new_id(), county=county, case_id=case_id, kind=kind, earliest=earliest, latest=latest,
        needs=replace(needs, allocated_facilitators=allocated), created_at=_now(), created_by=principal.label)
    with uow_factory() as uow:
        uow.repo.add_request(request)
        uow.audit(principal.label, "meeting_request.create", "meeting_request", request.request_id, county)
    return request


@audited_refusals
def list_requests(uow_factory: Callable, principal: Principal, county: str, status: str = "") -> list[MeetingRequest]:
    county = _county(principal, county, *READERS)
    if status and status not in ("open", "booked", "withdrawn"):
        raise validation_error("status", "must be open, booked or withdrawn (or empty for all)")
    with uow_factory() as uow:
        found = uow.repo.requests(county, status=status or None)
        uow.audit(principal.label, "meeting_request.list", "meeting_request", None, county)
    return found


@audited_refusals
def withdraw_request(uow_factory: Callable, principal: Principal, request_id: str, reason: str) -> MeetingRequest:
    _staff(principal, *WRITERS)
    v = Violations()
    request_id = v.uuid("request_id", request_id)
    reason = v.text("reason", reason, required=True, limit=validation.MAX_TEXT)
    v.raise_if_any()
    with uow_factory() as uow:
        r = uow.repo.request(request_id, lock=True)
        if r is None or not _can_write(principal, r.county):
            raise Refusal(principal.label, "meeting_request.withdraw_refused", "meeting_request", request_id,
                          f"meeting request {request_id} not found")
        if r.status != "open":
            raise FailedPrecondition(f"meeting request {request_id} is {r.status}: only an open request is withdrawn "
                                     "(cancel the meeting instead)")
        uow.repo.set_request_status(request_id, "withdrawn", reason=reason)
        uow.audit(principal.label, "meeting_request.withdraw", "meeting_request", request_id, r.county, reason)
    return replace(r, status="withdrawn")


# -- allocation proposals -----------------------------------------------------------------------
def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _placement_dict(h: Horizon, p: Placement, duration: int) -> dict:
    return {"request_id": p.meeting_id, "starts_at": h.instant_of(p.start).isoformat(),
            "ends_at": h.instant_of(p.start + duration).isoformat(), "facilitator_ids": list(p.facilitator_ids),
            "venue_id": p.venue_id, "room_id": p.room_id}


def _report_dict(plan: Plan, greedy: Plan | None) -> dict:
    r = plan.report
    return {"method": r.method, "status": r.status, "objective": r.objective, "best_bound": r.best_bound,
            "gap": r.gap, "seconds": r.seconds, "seconds_to_first_feasible": r.seconds_to_first_feasible,
            "placed": r.placed, "meetings": r.meetings,
            "greedy_objective": greedy.report.objective if greedy else r.objective,
            "greedy_placed": greedy.report.placed if greedy else r.placed}


def _store_proposal(uow_factory, principal, county, h: Horizon, requests, plan: Plan, greedy: Plan | None,
                    kind: str) -> dict:
    durations = {r.request_id: r.duration_minutes for r in requests}
    placements = [_placement_dict(h, p, durations[p.meeting_id]) for p in plan.placements
                  if p.meeting_id in durations]
    not_placed = [{"request_id": u.meeting_id, "reasons": list(u.reasons)} for u in plan.unplaced]
    report = _report_dict(plan, greedy)
    proposal_id, at = validation.new_id(), _now()
    with uow_factory() as uow:
        uow.repo.add_proposal(proposal_id=proposal_id, county=county, horizon_start=h.start, weeks=h.days // 7,
                              placements=placements, not_placed=not_placed, report=report, at=at,
                              by=principal.label)
        uow.audit(principal.label, f"allocation.{kind}", "allocation_proposal", proposal_id, county,
                  f"{report['placed']}/{report['meetings']} placed, {report['status']}")
    PLACED.labels(county, "placed").inc(len(placements))
    PLACED.labels(county, "not_placed").inc(len(not_placed))
    return {"proposal_id": proposal_id, "county": county, "status": "proposed", "placements": placements,
            "not_placed": not_placed, "report": report, "created_at": at, "created_by": principal.label}


@audited_refusals
def propose_allocation(uow_factory: Callable, principal: Principal, settings: Settings, *, county: str,
                       request_ids: Sequence[str], horizon_start: str, weeks: int,
                       time_limit: float) -> dict:
    county = _county(principal, county, *WRITERS)
    v = Violations()
    ids = [v.uuid(f"request_ids[{i}]", r) for i, r in enumerate(request_ids[:MAX_PROPOSAL_REQUESTS + 1])]
    if len(request_ids) > MAX_PROPOSAL_REQUESTS:
        v.add("request_ids", f"must name at most {MAX_PROPOSAL_REQUESTS} requests")
    weeks = weeks or 4
    if not 1 <= weeks <= MAX_WEEKS:
        v.add("weeks", f"must be 1-{MAX_WEEKS}")
    time_limit = time_limit or 10.0
    if not 0.5 <= time_limit <= 60:
        v.add("time_limit_seconds", "must be 0.5-60 seconds")
    today = _now().astimezone(LOCAL).date()
    start = _monday(today)
    if horizon_start:
        try:
            start = date.fromisoformat(horizon_start)
            if start.weekday() != 0:
                v.add("horizon_start", "must be a Monday")
            elif start < _monday(today):
                v.add("horizon_start", "must not be before this week's Monday")
            elif start > today + timedelta(days=validation.MAX_DAYS_AHEAD):
                v.add("horizon_start", f"must be within {validation.MAX_DAYS_AHEAD} days from today")
        except ValueError:
            v.add("horizon_start", "must be a date YYYY-MM-DD")
    v.raise_if_any()
    h = Horizon.weeks_from(start, weeks)
    with uow_factory() as uow:
        requests = uow.repo.requests(county, status="open", ids=ids or None)
        facilitators = uow.repo.facilitators(county)
        venues = uow.repo.venues(county)
        booked = uow.repo.meetings(county, starts_from=h.instant_of(0) - timedelta(days=7),
                                   starts_before=h.instant_of(h.minutes))
    if ids:
        missing = sorted(set(ids) - {r.request_id for r in requests})
        if missing:
            raise validation_error("request_ids", "must all be open requests of the county; not: " + ", ".join(missing))
    # Nothing may be placed in the past: the window starts at the next slot from now.
    now_minute = max(0, h.minute_of(_now()) + 30)
    problem = build_problem(h, requests, facilitators, venues, booked)
    problem = replace(problem, meetings=tuple(replace(m, earliest=max(m.earliest, now_minute - now_minute % 30))
                                              for m in problem.meetings))
    with SOLVES.labels("propose").time():
        greedy = allocation.greedy(problem)
        plan = allocation.optimise(problem, time_limit=time_limit, workers=settings.solver_workers)
    return _store_proposal(uow_factory, principal, county, h, requests, plan, greedy, "propose")


@audited_refusals
def get_proposal(uow_factory: Callable, principal: Principal, proposal_id: str) -> dict:
    _staff(principal, *READERS)
    v = Violations()
    proposal_id = v.uuid("proposal_id", proposal_id)
    v.raise_if_any()
    with uow_factory() as uow:
        found = uow.repo.proposal(proposal_id)
        if found is None or found["county"] not in principal.counties:
            raise Refusal(principal.label, "allocation.read_refused", "allocation_proposal", proposal_id,
                          f"allocation proposal {proposal_id} not found")
        uow.audit(principal.label, "allocation.read", "allocation_proposal", proposal_id, found["county"])
    return found


# -- booking ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Booking:
    """A placement as the caller gives it: when, who, where."""
    starts_at: datetime
    facilitator_ids: tuple[str, ...]
    venue_id: str
    room_id: str


def booking_from(v: Violations, field: str, data: dict) -> Booking | None:
    starts_at = data.get("starts_at")
    if not isinstance(starts_at, datetime):
        v.add(f"{field}.starts_at", "is required")
    elif not validation.plannable(starts_at):
        v.add(f"{field}.starts_at", f"must be within {validation.MAX_DAYS_AHEAD} days from today")
    ids = data.get("facilitator_ids") or []
    facilitator_ids = tuple(x for x in (v.uuid(f"{field}.facilitator_ids[{i}]", f) for i, f in enumerate(ids[:10]))
                            if x)
    if not ids:
        v.add(f"{field}.facilitator_ids", "must name the facilitators")
    elif len(set(map(str, ids[:10]))) != len(ids[:10]):
        v.add(f"{field}.facilitator_ids", "must not name a facilitator twice")
    venue_id = data.get("venue_id") or ""
    room_id = data.get("room_id") or ""
    if venue_id:
        venue_id = v.uuid(f"{field}.venue_id", venue_id)
        room_id = v.uuid(f"{field}.room_id", room_id)
    elif room_id:
        v.add(f"{field}.room_id", "must be empty for a home visit (no venue)")
    if v:
        return None
    return Booking(starts_at, facilitator_ids, venue_id, room_id)


class BookingRefused(FailedPrecondition):
    def __init__(self, reasons: Sequence[str]):
        super().__init__("the booking breaks these rules: " + "; ".join(reasons))
        self.reasons = tuple(reasons)


def _check_rules(uow, request: MeetingRequest, booking: Booking, exclude_meeting: str | None) -> list[str]:
    """Every hard rule for this one booking, with every other live booking as time already taken.
    Reads under the row locks the caller took, so the answer holds until commit."""
    local_day = booking.starts_at.astimezone(LOCAL).date()
    h = Horizon.weeks_from(_monday(local_day), 1)
    facilitators = uow.repo.facilitators(request.county, include_inactive=True, ids=booking.facilitator_ids,
                                         lock=True)
    venue = uow.repo.venue(booking.venue_id) if booking.venue_id else None
    reasons = []
    if len(facilitators) != len(booking.facilitator_ids):
        known = {f.facilitator_id for f in facilitators}
        reasons += [f"facilitator {f} is not a facilitator of {request.county}" for f in booking.facilitator_ids
                    if f not in known]
    if booking.venue_id and (venue is None or venue.county != request.county or not venue.active):
        reasons.append(f"venue {booking.venue_id} is not an open venue of {request.county}")
    elif venue is not None and not any(r.room_id == booking.room_id for r in venue.meeting_rooms):
        reasons.append(f"room {booking.room_id} is not a meeting room of {venue.name}")
    if booking.room_id and not reasons:
        uow.repo.lock_room(booking.room_id)
    if reasons:
        return reasons
    clashes = uow.repo.clashes(booking.facilitator_ids, booking.room_id, booking.starts_at,
                               booking.starts_at + timedelta(minutes=request.duration_minutes), exclude_meeting)
    reasons += [f"{what} is already booked then (meeting {meeting_id})" for what, meeting_id in clashes]
    booked = [m for m in uow.repo.meetings(request.county, starts_from=h.instant_of(0) - timedelta(days=1),
                                           starts_before=h.instant_of(h.minutes))
              if m.meeting_id != exclude_meeting]
    problem = build_problem(h, [request], facilitators, [venue] if venue else [], booked)
    placement = Placement(request.request_id, h.minute_of(booking.starts_at), booking.facilitator_ids,
                          booking.venue_id, booking.room_id)
    reasons += checker.violations(problem, [placement])
    return list(dict.fromkeys(reasons))


def _gate(gate: SafetyGate, request: MeetingRequest, measures: Sequence[str]) -> None:
    if request.kind == "supervision":
        return      # facilitators only: nothing for the risk service to weigh
    allowed, reasons = gate.ask(county=request.county, case_id=request.case_id,
                                participant_ids=request.needs.participant_ids, meeting_kind=request.kind,
                                plan_measures=measures)
    if not allowed:
        REFUSED.labels("safety_gate").inc()
        raise BookingRefused(["the risk service's safety gate does not allow it: " + "; ".join(reasons or ("deny",))])


def _measures_for(uow_factory, request: MeetingRequest, booking: Booking) -> tuple[str, ...]:
    with uow_factory() as uow:
        venue = uow.repo.venue(booking.venue_id) if booking.venue_id else None
        people = uow.repo.facilitators(request.county, include_inactive=True, ids=booking.facilitator_ids)
    return plan_measures(request, venue, people)


def _book(uow_factory: Callable, gate: SafetyGate, principal: Principal, request_id: str, booking: Booking,
          reason: str) -> Meeting:
    """Book an open request, or move the meeting of a booked one (a re-plan being accepted)."""
    with uow_factory() as uow:
        request = uow.repo.request(request_id)
    if request is None or not _can_write(principal, request.county):
        raise _refuse(uow_factory, principal, "meeting.book", "meeting_request", request_id)
    if request.status == "booked" and request.meeting_id:
        with uow_factory() as uow:
            current = uow.repo.meeting(request.meeting_id)
        return reschedule_meeting(uow_factory, gate, principal, request.meeting_id, booking, reason,
                                  current.version if current else 0)
    if request.status != "open":
        raise FailedPrecondition(f"meeting request {request_id} is {request.status}")
    if (booking.venue_id == "") != request.needs.at_home:
        raise BookingRefused(["a home visit has no venue, and any other meeting needs one"])
    measures = _measures_for(uow_factory, request, booking)
    # Asked before the booking's transaction: no row lock is held across a remote call.
    _gate(gate, request, measures)
    at = _now()
    ends_at = booking.starts_at + timedelta(minutes=request.duration_minutes)
    with uow_factory() as uow:
        fresh = uow.repo.request(request_id, lock=True)
        if fresh is None or fresh.status != "open":
            raise FailedPrecondition(f"meeting request {request_id} was booked or withdrawn meanwhile")
        reasons = _check_rules(uow, request, booking, None)
        if reasons:
            REFUSED.labels("rules").inc()
            raise BookingRefused(reasons)
        venue = uow.repo.venue(booking.venue_id) if booking.venue_id else None
        meeting = Meeting(
            meeting_id=validation.new_id(), county=request.county, case_id=request.case_id,
            request_id=request.request_id, kind=request.kind, starts_at=booking.starts_at.astimezone(timezone.utc),
            ends_at=ends_at.astimezone(timezone.utc), venue_id=booking.venue_id, room_id=booking.room_id,
            participant_ids=request.needs.participant_ids,
            facilitator_ids=tuple(dict.fromkeys(booking.facilitator_ids)), plan_measures=measures,
            created_at=at, updated_at=at)
        uow.repo.add_meeting(meeting, principal.label, reason)
        uow.repo.set_request_status(request_id, "booked", meeting_id=meeting.meeting_id)
        _publish(uow, meeting, "meeting_scheduled", venue)
        uow.audit(principal.label, "meeting.schedule", "meeting", meeting.meeting_id, meeting.county, reason or None)
    BOOKINGS.labels(meeting.county, "scheduled").inc()
    return meeting


@audited_refusals
def schedule_meeting(uow_factory: Callable, gate: SafetyGate, principal: Principal, request_id: str,
                     placement: dict) -> Meeting:
    _staff(principal, *WRITERS)
    v = Violations()
    request_id = v.uuid("request_id", request_id)
    booking = booking_from(v, "placement", placement)
    v.raise_if_any()
    return _book(uow_factory, gate, principal, request_id, booking, "booked by hand")


@audited_refusals
def accept_proposal(uow_factory: Callable, gate: SafetyGate, principal: Principal, proposal_id: str,
                    request_ids: Sequence[str], edits: Sequence[dict]) -> list[dict]:
    """Book the proposal's placements (or the coordinator's edits of them), each on its own: one
    that now breaks a rule, or that the safety gate does not allow, is reported and the rest go on."""
    _staff(principal, *WRITERS)
    v = Violations()
    proposal_id = v.uuid("proposal_id", proposal_id)
    only = {v.uuid(f"request_ids[{i}]", r) for i, r in enumerate(request_ids)}
    edited: dict[str, Booking] = {}
    for i, e in enumerate(edits):
        rid = v.uuid(f"edits[{i}].request_id", e.get("request_id"))
        b = booking_from(v, f"edits[{i}]", e)
        if rid and b:
            edited[rid] = b
    v.raise_if_any()
    with uow_factory() as uow:
        proposal = uow.repo.proposal(proposal_id)
        if proposal is None or not _can_write(principal, proposal["county"]):
            raise Refusal(principal.label, "allocation.accept_refused", "allocation_proposal", proposal_id,
                          f"allocation proposal {proposal_id} not found")
    proposed = {p["request_id"]: p for p in proposal["placements"]}
    unknown = sorted((only | set(edited)) - set(proposed) - {u["request_id"] for u in proposal["not_placed"]})
    if unknown:
        raise validation_error("request_ids", "must be requests of this proposal; not: " + ", ".join(unknown))
    chosen = sorted((only or set(proposed)) | set(edited))
    outcomes = []
    for request_id in chosen:
        if request_id in edited:
            booking = edited[request_id]
        elif request_id in proposed:
            p = proposed[request_id]
            booking = Booking(datetime.fromisoformat(p["starts_at"]), tuple(p["facilitator_ids"]), p["venue_id"],
                              p["room_id"])
        else:
            outcomes.append({"request_id": request_id, "booked": False, "meeting_id": "",
                             "reasons": ["the proposal could not place it: give a placement in edits"]})
            continue
        why = "edited from allocation proposal " if request_id in edited else "from allocation proposal "
        try:
            meeting = _book(uow_factory, gate, principal, request_id, booking, why + proposal_id)
            outcomes.append({"request_id": request_id, "booked": True, "meeting_id": meeting.meeting_id,
                             "reasons": []})
        except BookingRefused as refused:
            outcomes.append({"request_id": request_id, "booked": False, "meeting_id": "",
                             "reasons": list(refused.reasons)})
        except (FailedPrecondition, NotFound) as refused:
            outcomes.append({"request_id": request_id, "booked": False, "meeting_id": "",
                             "reasons": [refused.message]})
    if any(o["booked"] for o in outcomes):
        with uow_factory() as uow:
            uow.repo.mark_proposal_accepted(proposal_id, _now(), principal.label)
            uow.audit(principal.label, "allocation.accept", "allocation_proposal", proposal_id, proposal["county"],
                      f"{sum(o['booked'] for o in outcomes)}/{len(outcomes)} booked")
    return outcomes


# -- meetings -----------------------------------------------------------------------------------
def _writable_meeting(uow_factory, principal: Principal, meeting_id: str, action: str) -> Meeting:
    _staff(principal, *WRITERS)
    with uow_factory() as uow:
        m = uow.repo.meeting(meeting_id)
        if m is None or not _can_write(principal, m.county):
            raise Refusal(principal.label, f"{action}_refused", "meeting", meeting_id,
                          f"meeting {meeting_id} not found")
    return m


@audited_refusals
def reschedule_meeting(uow_factory: Callable, gate: SafetyGate, principal: Principal, meeting_id: str,
                       booking: Booking | dict, reason: str, expected_version: int) -> Meeting:
    v = Violations()
    meeting_id = v.uuid("meeting_id", meeting_id)
    if isinstance(booking, dict):
        booking = booking_from(v, "placement", booking)
    reason = v.text("reason", reason, required=True, limit=validation.MAX_TEXT)
    if not isinstance(expected_version, int) or expected_version < 1:
        v.add("expected_version", "must be the version you read")
    v.raise_if_any()
    current = _writable_meeting(uow_factory, principal, meeting_id, "meeting.reschedule")
    if current.status != "scheduled":
        raise FailedPrecondition(f"meeting {meeting_id} is {current.status}: book a new one")
    with uow_factory() as uow:
        request = uow.repo.request(current.request_id)
    if (booking.venue_id == "") != request.needs.at_home:
        raise BookingRefused(["a home visit has no venue, and any other meeting needs one"])
    measures = _measures_for(uow_factory, request, booking)
    _gate(gate, request, measures)
    at = _now()
    with uow_factory() as uow:
        fresh = uow.repo.meeting(meeting_id, lock=True)
        if fresh is None or fresh.version != expected_version:
            raise ConcurrentChange(f"meeting {meeting_id} is at version {fresh.version if fresh else '?'}, "
                                   f"not {expected_version}: read it again")
        if fresh.status != "scheduled":
            raise FailedPrecondition(f"meeting {meeting_id} was cancelled meanwhile")
        reasons = _check_rules(uow, request, booking, meeting_id)
        if reasons:
            REFUSED.labels("rules").inc()
            raise BookingRefused(reasons)
        moved = fresh.moved(starts_at=booking.starts_at.astimezone(timezone.utc),
                            ends_at=(booking.starts_at + timedelta(minutes=request.duration_minutes))
                            .astimezone(timezone.utc), venue_id=booking.venue_id, room_id=booking.room_id,
                            facilitator_ids=booking.facilitator_ids, plan_measures=measures, at=at)
        uow.repo.update_meeting(moved, fresh, "rescheduled", principal.label, reason)
        venue = uow.repo.venue(booking.venue_id) if booking.venue_id else None
        _publish(uow, moved, "meeting_rescheduled", venue, reason)
        uow.audit(principal.label, "meeting.reschedule", "meeting", meeting_id, moved.county, reason)
    BOOKINGS.labels(moved.county, "rescheduled").inc()
    return moved


@audited_refusals
def replan_meeting(uow_factory: Callable, principal: Principal, settings: Settings, meeting_id: str, reason: str,
                   time_limit: float) -> dict:
    """A proposal for one meeting, keeping every other booking exactly as it is: they are time
    already taken, so nothing else can move. Accepting it moves the meeting."""
    v = Violations()
    meeting_id = v.uuid("meeting_id", meeting_id)
    time_limit = time_limit or 2.0
    if not 0.2 <= time_limit <= 30:
        v.add("time_limit_seconds", "must be 0.2-30 seconds")
    v.raise_if_any()
    current = _writable_meeting(uow_factory, principal, meeting_id, "meeting.replan")
    if current.status != "scheduled":
        raise FailedPrecondition(f"meeting {meeting_id} is {current.status}")
    with uow_factory() as uow:
        request = uow.repo.request(current.request_id)
        now_local = _now().astimezone(LOCAL)
        start = _monday(max(now_local, request.earliest.astimezone(LOCAL)).date())
        weeks = min(MAX_WEEKS, max(1, ((request.latest.astimezone(LOCAL).date() - start).days // 7) + 1))
        h = Horizon.weeks_from(start, weeks)
        facilitators = uow.repo.facilitators(current.county)
        venues = uow.repo.venues(current.county)
        booked = [m for m in uow.repo.meetings(current.county, starts_from=h.instant_of(0) - timedelta(days=7),
                                               starts_before=h.instant_of(h.minutes))
                  if m.meeting_id != meeting_id]
    problem = build_problem(h, [request], facilitators, venues, booked)
    floor = max(0, h.minute_of(_now()) + 30)
    problem = replace(problem, meetings=tuple(replace(m, earliest=max(m.earliest, floor - floor % 30))
                                              for m in problem.meetings))
    with SOLVES.labels("replan").time():
        plan = allocation.replan(problem, (), request.request_id, time_limit=time_limit)
    with uow_factory() as uow:
        uow.audit(principal.label, "meeting.replan", "meeting", meeting_id, current.county, reason or None)
    return _store_proposal(uow_factory, principal, current.county, h, [request], plan, None, "replan")


@audited_refusals
def cancel_meeting(uow_factory: Callable, principal: Principal, meeting_id: str, reason: str,
                   expected_version: int) -> Meeting:
    v = Violations()
    meeting_id = v.uuid("meeting_id", meeting_id)
    reason = v.text("reason", reason, required=True, limit=validation.MAX_TEXT)
    if not isinstance(expected_version, int) or expected_version < 1:
        v.add("expected_version", "must be the version you read")
    v.raise_if_any()
    current = _writable_meeting(uow_factory, principal, meeting_id, "meeting.cancel")
    if current.status != "scheduled":
        raise FailedPrecondition(f"meeting {meeting_id} is already {current.status}")
    with uow_factory() as uow:
        fresh = uow.repo.meeting(meeting_id, lock=True)
        if fresh.version != expected_version:
            raise ConcurrentChange(f"meeting {meeting_id} is at version {fresh.version}, not {expected_version}")
        cancelled = _cancel(uow, fresh, principal.label, reason, reopen=True)
    return cancelled


def _cancel(uow, m: Meeting, by: str, reason: str, *, reopen: bool) -> Meeting:
    cancelled = m.cancelled(_now())
    uow.repo.update_meeting(cancelled, m, "cancelled", by, reason)
    # A coordinator's cancellation opens the request again so the meeting can be placed anew;
    # when the case closes or the person withdraws, the request goes with it.
    uow.repo.set_request_status(m.request_id, "open" if reopen else "withdrawn", meeting_id=None,
                                reason=None if reopen else reason)
    venue = uow.repo.venue(m.venue_id) if m.venue_id else None
    _publish(uow, cancelled, "meeting_cancelled", venue, reason)
    uow.audit(by, "meeting.cancel", "meeting", m.meeting_id, m.county, reason)
    BOOKINGS.labels(m.county, "cancelled").inc()
    return cancelled


@audited_refusals
def get_meeting(uow_factory: Callable, principal: Principal, meeting_id: str) -> Meeting:
    v = Violations()
    meeting_id = v.uuid("meeting_id", meeting_id)
    v.raise_if_any()
    with uow_factory() as uow:
        m = uow.repo.meeting(meeting_id)
        if m is None or not _can_read_meeting(principal, m):
            raise Refusal(principal.label, "meeting.read_refused", "meeting", meeting_id,
                          f"meeting {meeting_id} not found")
        uow.audit(principal.label, "meeting.read", "meeting", meeting_id, m.county)
    return m


@audited_refusals
def list_meetings(uow_factory: Callable, principal: Principal, *, county: str, case_id: str = "",
                  facilitator_id: str = "", starts_from: datetime | None = None,
                  starts_before: datetime | None = None, include_cancelled: bool = False) -> list[Meeting]:
    county = _county(principal, county, *READERS, "facilitator")
    v = Violations()
    case_id = v.uuid("case_id", case_id) if case_id else ""
    facilitator_id = v.uuid("facilitator_id", facilitator_id) if facilitator_id else ""
    v.raise_if_any()
    if not principal.has_any_role(*READERS):
        # A facilitator sees their own meetings only.
        if facilitator_id and facilitator_id != principal.subject:
            raise NotFound(f"facilitator {facilitator_id} not found")
        facilitator_id = principal.subject
    with uow_factory() as uow:
        found = uow.repo.meetings(county, case_id=case_id or None, facilitator_id=facilitator_id or None,
                                  starts_from=starts_from, starts_before=starts_before,
                                  include_cancelled=include_cancelled)
        uow.audit(principal.label, "meeting.list", "meeting", case_id or None, county)
    return found


# -- calendars ----------------------------------------------------------------------------------
def calendar_token(settings: Settings, facilitator_id: str) -> str:
    """The secret in a facilitator's feed URL: calendar apps subscribe without a login, so the
    URL itself is the credential. Rotating MEND_SCHEDULING_CALENDAR_SECRET revokes every feed."""
    return hmac.new(settings.calendar_secret, facilitator_id.encode(), hashlib.sha256).hexdigest()[:40]


def _feed(uow, settings: Settings, f: Facilitator) -> bytes:
    since = _now() - timedelta(days=30)
    meetings = uow.repo.meetings(f.county, facilitator_id=f.facilitator_id, starts_from=since, include_cancelled=True)
    venue_ids = {m.venue_id for m in meetings if m.venue_id}
    venues = {vid: uow.repo.venue(vid) for vid in venue_ids}
    return facilitator_feed(f.name, meetings, venues, organizer_email=settings.organizer_email)


@audited_refusals
def facilitator_calendar(uow_factory: Callable, principal: Principal, settings: Settings,
                         facilitator_id: str) -> tuple[bytes, str]:
    """(ics bytes, the subscription token)."""
    f, _ = get_facilitator(uow_factory, principal, facilitator_id)
    with uow_factory() as uow:
        data = _feed(uow, settings, f)
        uow.audit(principal.label, "calendar.read", "facilitator", facilitator_id, f.county)
    return data, calendar_token(settings, facilitator_id) if settings.calendar_secret else ""


@audited_refusals
def facilitator_calendar_by_token(uow_factory: Callable, settings: Settings, facilitator_id: str,
                                  token: str) -> bytes:
    v = Violations()
    facilitator_id = v.uuid("facilitator_id", facilitator_id)
    v.raise_if_any()
    if not settings.calendar_secret or not hmac.compare_digest(calendar_token(settings, facilitator_id), token or ""):
        raise NotFound("no such calendar")
    with uow_factory() as uow:
        f = uow.repo.facilitator(facilitator_id)
        if f is None or not f.active:
            raise NotFound("no such calendar")
        data = _feed(uow, settings, f)
        uow.audit(f"calendar-feed:{facilitator_id}", "calendar.subscription_read", "facilitator", facilitator_id,
                  f.county)
    return data


@audited_refusals
def meeting_calendar(uow_factory: Callable, principal: Principal, settings: Settings, meeting_id: str) -> bytes:
    m = get_meeting(uow_factory, principal, meeting_id)
    with uow_factory() as uow:
        venue = uow.repo.venue(m.venue_id) if m.venue_id else None
    return meeting_invitation(m, venue, organizer_email=settings.organizer_email)


# -- events from the cases service --------------------------------------------------------------
@audited_refusals
def on_case_events(uow_factory: Callable, envelopes: Sequence[Envelope], consumer: str) -> None:
    """A closed case loses its future meetings and open requests; a participant who withdraws
    consent is taken out of every future meeting (the meeting is cancelled, since the plan and
    the safety gate's answer were for those people together)."""
    for envelope in envelopes:
        with uow_factory() as uow:
            if not uow.claim_events(consumer, [envelope.event_id]):
                continue
            case_id = str(envelope.payload.get("case_id", ""))
            participant = None
            if envelope.type == "consent_withdrawn":
                participant = str(envelope.payload.get("participant_id", ""))
                why = "a participant withdrew consent"
            else:
                why = "the case was closed"
            for m in uow.repo.live_meetings_with(case_id, participant, after=_now()):
                _cancel(uow, uow.repo.meeting(m.meeting_id, lock=True), f"service:{SERVICE}", why, reopen=False)
            for r in uow.repo.open_requests_of_case(case_id):
                if participant is None or participant in r.needs.participant_ids:
                    uow.repo.set_request_status(r.request_id, "withdrawn", reason=why)
