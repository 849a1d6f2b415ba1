"""The scheduling service's use cases through the real repository, migrations and unit of work,
on SQLite and on PostgreSQL: facilitators and venues, requests, proposals from the optimiser and
their acceptance, bookings (every hard rule, double booking, the safety gate), moves and
cancellations with history and events, calendars, tenancy and audit. Only the cases service
and the risk service's gate are stand-ins here; tests/integration has them for real."""
from __future__ import annotations

import json
import threading
import uuid
from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from icalendar import Calendar
from sqlalchemy import select

from mend_common.auth import Principal
from mend_common.db import Database
from mend_common.envelope import new_event
from mend_common.errors import ConcurrentChange, FailedPrecondition, NotFound, PermissionDenied, ValidationFailed
from mend_common.migrations import upgrade
from mend_common.outbox import PlatformStore
from mend_common.registry import load_definition
from mend_common.testing.plugin import PostgresDatabase
from mend_common.uow import UnitsOfWork
from mend_scheduling.adapters.tables import metadata, platform
from mend_scheduling.domain.horizon import LOCAL
from mend_scheduling.service_layer import services
from mend_scheduling.service_layer.ports import CaseParties
from mend_scheduling.service_layer.services import BookingRefused, Settings
from mend_scheduling.service_layer.unit_of_work import SchedulingUnitOfWork

COUNTY = "gwent"
ELSEWHERE = "powys"
SETTINGS = Settings(organizer_email="scheduling@gwent.example", calendar_secret=b"x" * 32, solver_workers=2)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request, tmp_path_factory):
    if request.param == "sqlite":
        url, pg = f"sqlite:///{tmp_path_factory.mktemp('scheduling')}/scheduling.db", None
    else:
        pg = PostgresDatabase(f"mend_scheduling_{uuid.uuid4().hex[:10]}").create()
        url = pg.url
    upgrade(load_definition("scheduling"), url)
    database = Database(url, "scheduling", pool_size=6)
    yield database
    database.dispose()
    if pg:
        pg.drop()


@pytest.fixture
def uows(db):
    store = PlatformStore(db, platform, "scheduling")
    return UnitsOfWork(lambda: SchedulingUnitOfWork(db, store))


def staff(*roles, subject="c1", counties=(COUNTY,)) -> Principal:
    return Principal(kind="staff", subject=subject, roles=frozenset(roles), counties=frozenset(counties))


COORDINATOR = staff("coordinator")
AUDITOR = staff("auditor", subject="a1")
OTHER_COUNTY = staff("coordinator", subject="c9", counties=(ELSEWHERE,))
CASES_SERVICE = Principal(kind="service", subject="cases", roles=frozenset({"service"}), counties=frozenset({"*"}))


class Cases:
    """The cases service as this service sees it: a case's parties."""

    def __init__(self):
        self.known: dict[str, CaseParties] = {}

    def add(self, allocated=()) -> CaseParties:
        case = CaseParties(str(uuid.uuid4()), COUNTY, "preparation", (str(uuid.uuid4()), str(uuid.uuid4())), (),
                           tuple(allocated))
        self.known[case.case_id] = case
        return case

    def parties(self, county, case_id):
        case = self.known.get(case_id)
        return case if case and case.county == county else None


class Gate:
    def __init__(self, allowed=True, reasons=()):
        self.allowed, self.reasons, self.asked = allowed, tuple(reasons), []

    def ask(self, **question):
        self.asked.append(question)
        return self.allowed, self.reasons


def next_monday() -> date:
    today = datetime.now(LOCAL).date()
    return today + timedelta(days=7 - today.weekday())


MONDAY = next_monday()


def at(day_offset: int, hhmm: str) -> datetime:
    return datetime.combine(MONDAY + timedelta(days=day_offset), time.fromisoformat(hhmm), tzinfo=LOCAL)


WEEKDAYS_9_TO_5 = [{"weekday": d, "start": "09:00", "end": "17:00"} for d in ("mon", "tue", "wed", "thu", "fri")]


def facilitator(uows, *, name="Sam Staff", level="advanced", hours=30, languages=("en",), expires=None,
                conflicts=(), county=COUNTY, principal=COORDINATOR, availability=None):
    return services.save_facilitator(uows, principal, {
        "county": county, "name": name, "email": "sam@example.org", "kind": "staff", "home_lat": 51.59,
        "home_lon": -2.99, "availability": availability or WEEKDAYS_9_TO_5, "max_hours_per_week": hours,
        "vetting_date": (MONDAY - timedelta(days=100)).isoformat(),
        "vetting_expires_on": (expires or MONDAY + timedelta(days=200)).isoformat(), "training_level": level,
        "languages": list(languages), "conflicts": list(conflicts)})


def venue(uows, *, separate=True, accessibility=("step_free",), kind="community_room", name="Hall"):
    rooms = [{"name": "Main room", "capacity": 12}]
    if separate:
        rooms += [{"name": "Waiting A", "capacity": 4, "waiting_room": True},
                  {"name": "Waiting B", "capacity": 4, "waiting_room": True}]
    return services.save_venue(uows, COORDINATOR, {
        "county": COUNTY, "name": name, "address": "1 High St, Newport", "lat": 51.58, "lon": -2.99, "kind": kind,
        "neutral": kind == "community_room", "accessibility": list(accessibility), "rooms": rooms,
        "separate_waiting_rooms": separate,
        "opening": [{"weekday": d, "start": "08:00", "end": "21:00"} for d in ("mon", "tue", "wed", "thu", "fri")]})


def request(uows, cases, case, *, kind="conference", days=(0, 5), **needs):
    return services.request_meeting(uows, cases, COORDINATOR, {
        "county": COUNTY, "case_id": case.case_id, "kind": kind, "participant_ids": list(case.participant_ids),
        "earliest": at(days[0], "08:00"), "latest": at(days[1], "20:00"), **needs})


def placement(start: datetime, facilitators, v=None) -> dict:
    return {"starts_at": start, "facilitator_ids": [f.facilitator_id for f in facilitators],
            "venue_id": v.venue_id if v else "", "room_id": v.meeting_rooms[0].room_id if v else ""}


def outbox(db, event_type=None) -> list[dict]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(platform.outbox).order_by(platform.outbox.c.id)).all()
    bodies = [json.loads(r.body) for r in rows]
    return [b for b in bodies if event_type is None or b["type"] == event_type]


def audit_actions(db, resource_id) -> list[str]:
    with db.engine.connect() as conn:
        return [r.action for r in conn.execute(select(platform.audit_log).where(
            platform.audit_log.c.resource_id == resource_id).order_by(platform.audit_log.c.id))]


# -- schema ---------------------------------------------------------------------------------------
def test_migrations_build_exactly_the_tables_the_code_uses(db):
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_schemas": False})
        assert compare_metadata(ctx, metadata) == []


# -- facilitators and venues ---------------------------------------------------------------------
def test_a_facilitator_is_saved_read_and_updated_with_versions(uows, db):
    f = facilitator(uows, name="Alex Advanced")
    read, load = services.get_facilitator(uows, COORDINATOR, f.facilitator_id)
    assert read == f and load == 0
    data = {"facilitator_id": f.facilitator_id, "version": 1, "county": COUNTY, "name": "Alex A.",
            "email": f.email, "kind": "staff", "home_lat": 51.6, "home_lon": -3.0, "availability": WEEKDAYS_9_TO_5,
            "max_hours_per_week": 20, "vetting_date": f.vetting_date.isoformat(),
            "vetting_expires_on": f.vetting_expires_on.isoformat(), "training_level": "advanced"}
    updated = services.save_facilitator(uows, COORDINATOR, data)
    assert updated.version == 2 and updated.max_minutes_per_week == 1200
    with pytest.raises(ConcurrentChange):
        services.save_facilitator(uows, COORDINATOR, data)          # still says version 1
    assert "facilitator.save" in audit_actions(db, f.facilitator_id)


def test_bad_facilitator_input_names_every_field_and_rule(uows):
    with pytest.raises(ValidationFailed) as refused:
        services.save_facilitator(uows, COORDINATOR, {
            "county": COUNTY, "name": "", "email": "nope", "kind": "robot", "home_lat": 123.0, "home_lon": 0.0,
            "availability": [{"weekday": "funday", "start": "9am", "end": "17:00"}], "max_hours_per_week": 0,
            "vetting_date": "2026-01-01", "vetting_expires_on": "2028-01-01", "training_level": "guru",
            "languages": ["c3po!"]})
    fields = {v.field for v in refused.value.violations}
    assert {"name", "email", "kind", "home_lat", "availability[0].weekday", "availability[0].start",
            "max_hours_per_week", "vetting_expires_on", "training_level", "languages[0]"} <= fields


def test_a_venue_with_separate_waiting_needs_two_waiting_rooms(uows):
    with pytest.raises(ValidationFailed) as refused:
        services.save_venue(uows, COORDINATOR, {
            "county": COUNTY, "name": "Hall", "address": "x", "lat": 51.5, "lon": -3.0, "kind": "community_room",
            "rooms": [{"name": "Main", "capacity": 10}], "separate_waiting_rooms": True,
            "opening": [{"weekday": "mon", "start": "09:00", "end": "17:00"}]})
    assert [v.field for v in refused.value.violations] == ["separate_waiting_rooms"]


def test_another_countys_staff_see_nothing(uows, db):
    f = facilitator(uows)
    v = venue(uows)
    with pytest.raises(NotFound):
        services.get_facilitator(uows, OTHER_COUNTY, f.facilitator_id)
    with pytest.raises(NotFound):
        services.get_venue(uows, OTHER_COUNTY, v.venue_id)
    with pytest.raises(NotFound):
        services.list_facilitators(uows, OTHER_COUNTY, COUNTY)
    assert "facilitator.read_refused" in audit_actions(db, f.facilitator_id)


def test_the_cases_service_reads_facilitator_records_for_its_allocation(uows):
    f = facilitator(uows, level="practitioner")
    records = services.facilitator_records(uows, CASES_SERVICE, COUNTY, [f.facilitator_id, str(uuid.uuid4())])
    assert records == [{"facilitator_id": f.facilitator_id, "county": COUNTY, "active": True,
                        "vetting_expires_on": f.vetting_expires_on.isoformat(), "training_level": "practitioner",
                        "name": f.name}]
    assert services.facilitator_records(uows, CASES_SERVICE, ELSEWHERE, [f.facilitator_id]) == []
    with pytest.raises(PermissionDenied):
        services.facilitator_records(uows, COORDINATOR, COUNTY, [f.facilitator_id])


# -- booking by hand ------------------------------------------------------------------------------
def test_a_booking_passes_the_gate_is_stored_with_history_and_publishes_meeting_scheduled(uows, db):
    cases, gate = Cases(), Gate()
    a, b = facilitator(uows, name="A"), facilitator(uows, name="B")
    v = venue(uows)
    case = cases.add()
    r = request(uows, cases, case, separate_waiting=True)
    m = services.schedule_meeting(uows, gate, COORDINATOR, r.request_id, placement(at(1, "10:00"), [a, b], v))
    assert m.status == "scheduled" and m.ends_at - m.starts_at == timedelta(minutes=180)
    assert set(m.plan_measures) == {"co_facilitation", "separate_arrival_and_waiting"}
    assert gate.asked == [{"county": COUNTY, "case_id": case.case_id, "participant_ids": case.participant_ids,
                           "meeting_kind": "conference", "plan_measures": m.plan_measures}]
    stored = services.get_meeting(uows, COORDINATOR, m.meeting_id)
    assert [h.action for h in stored.history] == ["scheduled"]
    event = [e for e in outbox(db, "meeting_scheduled") if e["payload"]["meeting_id"] == m.meeting_id][0]
    assert event["county"] == COUNTY
    assert event["payload"]["venue_name"] == "Hall" and event["payload"]["participant_ids"] == list(case.participant_ids)
    assert datetime.fromisoformat(event["payload"]["starts_at"]) == at(1, "10:00")
    [req] = [x for x in services.list_requests(uows, COORDINATOR, COUNTY) if x.request_id == r.request_id]
    assert req.status == "booked" and req.meeting_id == m.meeting_id


def test_the_gate_saying_no_books_nothing(uows, db):
    cases = Cases()
    a, b = facilitator(uows, name="A"), facilitator(uows, name="B")
    v = venue(uows)
    r = request(uows, cases, cases.add())
    before = len(outbox(db))
    with pytest.raises(BookingRefused) as refused:
        services.schedule_meeting(uows, Gate(False, ["no approved assessment for the victim"]), COORDINATOR,
                                  r.request_id, placement(at(1, "10:00"), [a, b], v))
    assert "no approved assessment for the victim" in refused.value.message
    assert len(outbox(db)) == before
    assert services.list_meetings(uows, COORDINATOR, county=COUNTY, case_id=r.case_id) == []


@pytest.mark.parametrize("breach, expected", [
    ("double_facilitator", "already booked"),
    ("expired_vetting", "vetting"),
    ("training", "training"),
    ("no_waiting_rooms", "waiting"),
    ("outside_availability", "availab"),
    ("conflict", "conflict"),
    ("welsh", "cy"),
])
def test_a_booking_breaking_a_hard_rule_is_refused_naming_it(uows, breach, expected):
    cases, gate = Cases(), Gate()
    a = facilitator(uows, name="A", expires=MONDAY + timedelta(days=1) if breach == "expired_vetting" else None,
                    level="foundation" if breach == "training" else "advanced")
    b = facilitator(uows, name="B")
    v = venue(uows, separate=breach != "no_waiting_rooms")
    case = cases.add()
    if breach == "conflict":
        a = services.save_facilitator(uows, COORDINATOR, {
            "facilitator_id": a.facilitator_id, "version": a.version, "county": COUNTY, "name": a.name,
            "email": a.email, "kind": a.kind, "home_lat": a.home_lat, "home_lon": a.home_lon,
            "availability": WEEKDAYS_9_TO_5, "max_hours_per_week": 30, "vetting_date": a.vetting_date.isoformat(),
            "vetting_expires_on": a.vetting_expires_on.isoformat(), "training_level": a.training_level,
            "conflicts": [case.participant_ids[0]]})
    needs = {"separate_waiting": True, "min_training_level": "advanced"}
    if breach == "welsh":
        needs["languages"] = ["cy"]
    r = request(uows, cases, case, **needs)
    start = at(3, "18:00") if breach == "outside_availability" else at(3, "10:00")
    if breach == "double_facilitator":
        other = request(uows, cases, cases.add(), kind="indirect_session")
        services.schedule_meeting(uows, gate, COORDINATOR, other.request_id, placement(at(3, "11:00"), [a], v))
        v = venue(uows, name="Other hall")
    with pytest.raises(BookingRefused) as refused:
        services.schedule_meeting(uows, gate, COORDINATOR, r.request_id, placement(start, [a, b], v))
    assert any(expected in reason.lower() for reason in refused.value.reasons), refused.value.reasons


def test_two_coordinators_booking_one_facilitator_at_once_get_one_booking(uows):
    cases, gate = Cases(), Gate()
    a = facilitator(uows, name="Only one of me")
    rooms = [venue(uows, name=f"Hall {i}", separate=False) for i in range(2)]
    requests = [request(uows, cases, cases.add(), kind="indirect_session") for _ in range(2)]
    results, barrier = [], threading.Barrier(2)

    def book(i):
        barrier.wait()
        try:
            results.append(services.schedule_meeting(uows, gate, COORDINATOR, requests[i].request_id,
                                                     placement(at(2, "10:00"), [a], rooms[i])))
        except BookingRefused as refused:
            results.append(refused)

    threads = [threading.Thread(target=book, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for r in results if not isinstance(r, BookingRefused)) == 1
    assert len(services.list_meetings(uows, COORDINATOR, county=COUNTY, facilitator_id=a.facilitator_id)) == 1


def test_moving_and_cancelling_keep_history_and_publish(uows, db):
    cases, gate = Cases(), Gate()
    a, b = facilitator(uows, name="A"), facilitator(uows, name="B")
    v = venue(uows)
    r = request(uows, cases, cases.add())
    m = services.schedule_meeting(uows, gate, COORDINATOR, r.request_id, placement(at(1, "10:00"), [a, b], v))
    moved = services.reschedule_meeting(uows, gate, COORDINATOR, m.meeting_id, placement(at(2, "13:00"), [a, b], v),
                                        "victim asked for the afternoon", m.version)
    assert moved.sequence == 1 and moved.starts_at == at(2, "13:00")
    with pytest.raises(ConcurrentChange):
        services.cancel_meeting(uows, COORDINATOR, m.meeting_id, "stale", m.version)
    cancelled = services.cancel_meeting(uows, COORDINATOR, m.meeting_id, "offender unwell", moved.version)
    assert cancelled.status == "cancelled" and cancelled.sequence == 2
    history = services.get_meeting(uows, COORDINATOR, m.meeting_id).history
    assert [h.action for h in history] == ["scheduled", "rescheduled", "cancelled"]
    assert history[1].before["starts_at"] == at(1, "10:00").astimezone(timezone.utc).isoformat()
    assert history[2].reason == "offender unwell"
    types = [e["type"] for e in outbox(db) if e["payload"].get("meeting_id") == m.meeting_id]
    assert types == ["meeting_scheduled", "meeting_rescheduled", "meeting_cancelled"]
    # The request is open again, and the freed time can be booked.
    [req] = [x for x in services.list_requests(uows, COORDINATOR, COUNTY) if x.request_id == r.request_id]
    assert req.status == "open"
    again = services.schedule_meeting(uows, gate, COORDINATOR, r.request_id, placement(at(2, "13:00"), [a, b], v))
    assert again.meeting_id != m.meeting_id


# -- proposals ------------------------------------------------------------------------------------
def test_a_proposal_places_the_open_requests_and_accepting_books_them(uows, db):
    cases, gate = Cases(), Gate()
    people = [facilitator(uows, name=f"F{i}") for i in range(3)]
    venue(uows)
    wanted = [request(uows, cases, cases.add(), kind=k, separate_waiting=True)
              for k in ("conference", "indirect_session", "conference")]
    proposal = services.propose_allocation(uows, COORDINATOR, SETTINGS, county=COUNTY,
                                           request_ids=[r.request_id for r in wanted],
                                           horizon_start=MONDAY.isoformat(), weeks=1, time_limit=5)
    report = proposal["report"]
    assert report["placed"] == 3 and report["meetings"] == 3 and not proposal["not_placed"]
    assert report["objective"] <= report["greedy_objective"] and report["best_bound"] <= report["objective"]
    assert report["status"] in ("OPTIMAL", "FEASIBLE")
    outcomes = services.accept_proposal(uows, gate, COORDINATOR, proposal["proposal_id"], [], [])
    assert [o["booked"] for o in outcomes] == [True, True, True], outcomes
    booked = {m.request_id: m for m in services.list_meetings(uows, COORDINATOR, county=COUNTY)}
    for p in proposal["placements"]:
        m = booked[p["request_id"]]
        assert m.starts_at == datetime.fromisoformat(p["starts_at"])
        assert set(m.facilitator_ids) == set(p["facilitator_ids"])
    county_people = {f.facilitator_id for f in services.list_facilitators(uows, COORDINATOR, COUNTY)}
    assert {f.facilitator_id for f in people} <= county_people
    assert all(set(p["facilitator_ids"]) <= county_people for p in proposal["placements"])
    assert services.get_proposal(uows, COORDINATOR, proposal["proposal_id"])["status"] == "accepted"


def test_a_request_nobody_can_take_is_explained(uows):
    cases = Cases()
    facilitator(uows, name="English only")
    venue(uows)
    r = request(uows, cases, cases.add(), kind="indirect_session", languages=["cy"])
    proposal = services.propose_allocation(uows, COORDINATOR, SETTINGS, county=COUNTY, request_ids=[r.request_id],
                                           horizon_start=MONDAY.isoformat(), weeks=1, time_limit=2)
    [why] = proposal["not_placed"]
    assert why["request_id"] == r.request_id and any("cy" in reason for reason in why["reasons"]), why


def test_replanning_one_meeting_moves_only_it(uows):
    cases, gate = Cases(), Gate()
    a = facilitator(uows, name="A")
    v = venue(uows, separate=False)
    first = request(uows, cases, cases.add(), kind="indirect_session")
    second = request(uows, cases, cases.add(), kind="indirect_session")
    m1 = services.schedule_meeting(uows, gate, COORDINATOR, first.request_id, placement(at(1, "10:00"), [a], v))
    m2 = services.schedule_meeting(uows, gate, COORDINATOR, second.request_id, placement(at(1, "13:00"), [a], v))
    proposal = services.replan_meeting(uows, COORDINATOR, SETTINGS, m2.meeting_id, "room flooded", 2)
    [p] = proposal["placements"]
    assert p["request_id"] == second.request_id
    new_start = datetime.fromisoformat(p["starts_at"])
    assert not (m1.starts_at < new_start + timedelta(minutes=90) and new_start < m1.ends_at)
    outcomes = services.accept_proposal(uows, gate, COORDINATOR, proposal["proposal_id"], [], [])
    assert outcomes[0]["booked"], outcomes
    assert services.get_meeting(uows, COORDINATOR, m1.meeting_id).version == 1      # untouched
    assert [h.action for h in services.get_meeting(uows, COORDINATOR, m2.meeting_id).history][-1] in (
        "rescheduled", "scheduled")


# -- calendars ------------------------------------------------------------------------------------
def test_a_facilitators_feed_and_a_meetings_ics_parse_as_rfc5545(uows):
    cases, gate = Cases(), Gate()
    a, b = facilitator(uows, name="Feed Owner"), facilitator(uows, name="B")
    v = venue(uows)
    r1 = request(uows, cases, cases.add())
    r2 = request(uows, cases, cases.add(), kind="indirect_session")
    m1 = services.schedule_meeting(uows, gate, COORDINATOR, r1.request_id, placement(at(1, "10:00"), [a, b], v))
    m2 = services.schedule_meeting(uows, gate, COORDINATOR, r2.request_id, placement(at(2, "10:00"), [a], v))
    services.cancel_meeting(uows, COORDINATOR, m2.meeting_id, "not needed", m2.version)
    data, token = services.facilitator_calendar(uows, COORDINATOR, SETTINGS, a.facilitator_id)
    cal = Calendar.from_ical(data)
    events = {str(e["UID"]): e for e in cal.walk("VEVENT")}
    assert set(events) == {f"{m1.meeting_id}@mend", f"{m2.meeting_id}@mend"}
    assert str(events[f"{m2.meeting_id}@mend"]["STATUS"]) == "CANCELLED"
    assert events[f"{m1.meeting_id}@mend"].decoded("DTSTART") == at(1, "10:00")
    assert str(cal["METHOD"]) == "PUBLISH"
    for p in cases.known.values():
        assert all(pid.encode() not in data for pid in p.participant_ids)     # nobody named
    subscribed = Calendar.from_ical(services.facilitator_calendar_by_token(uows, SETTINGS, a.facilitator_id, token))
    assert {str(e["UID"]) for e in subscribed.walk("VEVENT")} == set(events)
    with pytest.raises(NotFound):
        services.facilitator_calendar_by_token(uows, SETTINGS, a.facilitator_id, "0" * 40)
    one = Calendar.from_ical(services.meeting_calendar(uows, COORDINATOR, SETTINGS, m1.meeting_id))
    [event] = one.walk("VEVENT")
    assert int(event["SEQUENCE"]) == 0 and "Hall" in str(event["LOCATION"])


# -- the cases service's events -------------------------------------------------------------------
def test_a_closed_case_cancels_its_future_meetings_once(uows, db):
    cases, gate = Cases(), Gate()
    a, b = facilitator(uows, name="A"), facilitator(uows, name="B")
    v = venue(uows)
    case = cases.add()
    m = services.schedule_meeting(uows, gate, COORDINATOR, request(uows, cases, case).request_id,
                                  placement(at(1, "10:00"), [a, b], v))
    still_open = request(uows, cases, case, kind="indirect_session")
    closed = new_event("cases", "case_closed", COUNTY, {"case_id": case.case_id, "outcome": "withdrawn"})
    services.on_case_events(uows, [closed, closed], "scheduling.on_case_closed")
    services.on_case_events(uows, [closed], "scheduling.on_case_closed")
    assert services.get_meeting(uows, COORDINATOR, m.meeting_id).status == "cancelled"
    cancellations = [e for e in outbox(db, "meeting_cancelled") if e["payload"]["meeting_id"] == m.meeting_id]
    assert len(cancellations) == 1
    [req] = [x for x in services.list_requests(uows, COORDINATOR, COUNTY) if x.request_id == still_open.request_id]
    assert req.status == "withdrawn"


def test_a_facilitator_sees_only_their_own_meetings(uows):
    cases, gate = Cases(), Gate()
    a, b = facilitator(uows, name="A"), facilitator(uows, name="B")
    v = venue(uows, separate=False)
    mine = services.schedule_meeting(uows, gate, COORDINATOR,
                                     request(uows, cases, cases.add(), kind="indirect_session").request_id,
                                     placement(at(4, "09:00"), [a], v))
    theirs = services.schedule_meeting(uows, gate, COORDINATOR,
                                       request(uows, cases, cases.add(), kind="indirect_session").request_id,
                                       placement(at(4, "09:00"), [b], venue(uows, separate=False, name="H2")))
    me = staff("facilitator", subject=a.facilitator_id)
    assert {m.meeting_id for m in services.list_meetings(uows, me, county=COUNTY)} >= {mine.meeting_id}
    assert theirs.meeting_id not in {m.meeting_id for m in services.list_meetings(uows, me, county=COUNTY)}
    with pytest.raises(NotFound):
        services.get_meeting(uows, me, theirs.meeting_id)
    with pytest.raises(PermissionDenied):
        services.schedule_meeting(uows, Gate(), me, str(uuid.uuid4()), placement(at(4, "13:00"), [a], v))
