"""The risk service's use cases through the real repository, migrations and unit of work, on
SQLite and on PostgreSQL: what is stored, published and audited, who may assess, approve and
ask, how assessments lapse (new information, the case's events, the sweep) and how the safety
gate and case clearance answer. Only the cases service (asked for a case's facts) is a stand-in."""
from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text, update

from mend_common.auth import Principal
from mend_common.db import Database
from mend_common.envelope import new_event
from mend_common.errors import (ConcurrentChange, FailedPrecondition, NotFound, PermissionDenied, Unavailable,
                                ValidationFailed)
from mend_common.migrations import upgrade
from mend_common.outbox import PlatformStore
from mend_common.registry import load_definition
from mend_common.testing.plugin import PostgresDatabase
from mend_common.uow import UnitsOfWork
from mend_risk.adapters.tables import assessments, metadata, platform
from mend_risk.bootstrap import risk_settings
from mend_risk.domain.assessment import InvalidAssessment
from mend_risk.service_layer import services
from mend_risk.service_layer.ports import CaseFacts, ParticipantFacts
from mend_risk.service_layer.unit_of_work import RiskUnitOfWork

COUNTY = "cumbria"
ELSEWHERE = "lancashire"
RULE_VERSION = "risk-rules-v1"
VALID_DAYS = 90
SECRET = "SECRET-NOTE: victim lives at 4 Mill Lane, on medication"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request, tmp_path_factory):
    if request.param == "sqlite":
        url, pg = f"sqlite:///{tmp_path_factory.mktemp('risk')}/risk.db", None
    else:
        pg = PostgresDatabase(f"mend_risk_{uuid.uuid4().hex[:10]}").create()
        url = pg.url
    upgrade(load_definition("risk"), url)
    database = Database(url, "risk", pool_size=4)
    yield database
    database.dispose()
    if pg:
        pg.drop()


@pytest.fixture
def uows(db):
    store = PlatformStore(db, platform, "risk")
    return UnitsOfWork(lambda: RiskUnitOfWork(db, store))


# -- principals -----------------------------------------------------------------------------------
def staff(*roles, subject="c1", counties=(COUNTY,)) -> Principal:
    return Principal(kind="staff", subject=subject, roles=frozenset(roles), counties=frozenset(counties))


def service(subject="scheduling", counties=("*",)) -> Principal:
    return Principal(kind="service", subject=subject, roles=frozenset({"service"}), counties=frozenset(counties))


COORDINATOR = staff("coordinator")                      # the usual assessor
MANAGER = staff("manager", subject="m1")
AUDITOR = staff("auditor", subject="a1")
FACILITATOR = staff("facilitator", subject="f-1")       # allocated to every case below
OTHER_FACILITATOR = staff("facilitator", subject="f-2")
OTHER_COUNTY_MANAGER = staff("manager", subject="m9", counties=(ELSEWHERE,))
OTHER_COUNTY_COORDINATOR = staff("coordinator", subject="c9", counties=(ELSEWHERE,))
SCHEDULING = service()


# -- the cases service, stood in for --------------------------------------------------------------
class Cases:
    """An in-memory CaseFactsSource: the facts of the cases it knows, by county."""

    def __init__(self, down: bool = False):
        self.by_id: dict[str, CaseFacts] = {}
        self.down = down
        self.asked: list[tuple[str, str]] = []

    def facts(self, county: str, case_id: str) -> CaseFacts | None:
        self.asked.append((county, case_id))
        if self.down:
            raise Unavailable("the cases service could not be asked about this case; try again")
        found = self.by_id.get(case_id)
        return found if found is not None and found.county == county else None

    def open(self, stage="risk_and_safety", roles=("victim", "responsible_person"), facilitators=("f-1",),
             flags=()) -> CaseFacts:
        people = {str(uuid.uuid4()): role for role in roles}
        case = CaseFacts(case_id=str(uuid.uuid4()), county=COUNTY, stage=stage, offence_flags=tuple(flags),
                         facilitator_ids=tuple(facilitators),
                         participants={pid: ParticipantFacts(pid, role) for pid, role in people.items()})
        self.by_id[case.case_id] = case
        return case

    def move(self, case: CaseFacts, stage: str) -> None:
        self.by_id[case.case_id] = replace(self.by_id[case.case_id], stage=stage)


def people(case: CaseFacts) -> list[str]:
    return list(case.participants)


SENSITIVE = [{"kind": "domestic_abuse", "severity": "low", "source": "police", "notes": SECRET}]
MEDIUM_HARM = [{"kind": "physical_harm_to_participant", "severity": "medium", "source": "victim_support",
                "notes": SECRET}]


def assess(uows, cases, case, pid, factors=(), principal=COORDINATOR):
    return services.record_assessment(uows, cases, principal, case_id=case.case_id, participant_id=pid,
                                      factors=list(factors), valid_days=VALID_DAYS)


def stored(uows, assessment_id):
    """The assessment as the database holds it (no audit record: the repository, not a use case)."""
    with uows() as uow:
        return uow.assessments.get(assessment_id)


def events(db, case_id=None):
    """(event_type column, body, raw body) of every outbox row, oldest first, of one case if named."""
    with db.transaction() as conn:
        rows = conn.execute(select(platform.outbox.c.event_type, platform.outbox.c.body)
                            .order_by(platform.outbox.c.id)).all()
    found = [(r.event_type, json.loads(r.body), r.body) for r in rows]
    return [f for f in found if case_id is None or f[1]["payload"].get("case_id") == case_id]


def event_types(db, case_id):
    return [t for t, _, _ in events(db, case_id)]


def audits(db, resource_id):
    with db.transaction() as conn:
        return [(r.principal, r.action, r.county, r.reason) for r in conn.execute(
            select(platform.audit_log).where(platform.audit_log.c.resource_id == resource_id)
            .order_by(platform.audit_log.c.id))]


def counts(db):
    with db.transaction() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()
                     for t in (platform.outbox, platform.audit_log, assessments))


def expired_events(db, case_id):
    return [(body["payload"]["assessment_id"], body["payload"]["cause"])
            for t, body, _ in events(db, case_id) if t == "risk_expired"]


def run_out(db, assessment_id, ago=timedelta(minutes=1)):
    """Make an assessment's validity end in the past, as time passing would."""
    with db.transaction() as conn:
        conn.execute(update(assessments).where(assessments.c.assessment_id == assessment_id)
                     .values(expires_at=datetime.now(timezone.utc) - ago))


def fields(raised) -> list[str]:
    return [v.field for v in raised.value.violations]


# -- the schema ------------------------------------------------------------------------------------
def test_migrations_build_exactly_the_tables_the_code_declares(db):
    with db.engine.connect() as conn:
        if db.is_postgres:
            conn.execute(text('SET search_path TO "risk"'))
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
    assert diff == []


# -- recording ------------------------------------------------------------------------------------
def test_an_assessment_nothing_sensitive_stands_approved_by_the_rules_and_is_stored_whole(db, uows):
    cases = Cases()
    case = cases.open()
    victim = people(case)[0]
    before = datetime.now(timezone.utc)
    made = assess(uows, cases, case, victim, MEDIUM_HARM)

    assert made.status == "approved" and made.approved_by == f"rule:{RULE_VERSION}"
    assert made.conclusion.level == "medium" and not made.conclusion.needs_approval
    assert made.conclusion.measures == ("co_facilitation", "separate_arrival_and_waiting")
    assert made.stage == "risk_and_safety" and made.assessor == "c1" and made.county == COUNTY
    assert made.version == 1 and made.supersedes is None
    assert before <= made.assessed_at <= datetime.now(timezone.utc)
    assert made.expires_at == made.assessed_at + timedelta(days=VALID_DAYS)

    # Read back through the use case: everything survives the round trip, times still aware.
    read = services.get_assessment(uows, cases, COORDINATOR, made.assessment_id)
    assert read == made
    assert read.factors[0].notes == SECRET and read.assessed_at.tzinfo is not None
    assert [r.rule_id for r in read.conclusion.reasons] == [r.rule_id for r in made.conclusion.reasons]

    published = events(db, case.case_id)
    assert [t for t, _, _ in published] == ["risk_assessed"]
    body = published[0][1]
    assert body["type"] == "risk_assessed" and body["source"] == "risk" and body["county"] == COUNTY
    assert body["payload"] == {
        "assessment_id": made.assessment_id, "case_id": case.case_id, "participant_id": victim,
        "stage": "risk_and_safety", "level": "medium", "decision": "direct_allowed",
        "measures": ["co_facilitation", "separate_arrival_and_waiting"], "needs_approval": False,
        "rule_version": RULE_VERSION, "status": "approved"}
    assert SECRET not in published[0][2]
    assert audits(db, made.assessment_id) == [
        ("staff:c1", "risk.assess", COUNTY, f"case {case.case_id}: medium, direct_allowed, approved"),
        ("staff:c1", "risk.read", COUNTY, None)]


def test_a_sensitive_assessment_awaits_approval_and_its_notes_never_leave_in_events(db, uows):
    cases = Cases()
    case = cases.open(flags=("domestic_abuse",))
    victim = people(case)[0]
    made = assess(uows, cases, case, victim, SENSITIVE)
    assert made.status == "awaiting_approval" and made.approved_by is None and made.approved_at is None
    assert made.conclusion.needs_approval

    assert event_types(db, case.case_id) == ["risk_assessed", "risk_approval_requested"]
    requested = events(db, case.case_id)[1][1]["payload"]
    assert requested == {"assessment_id": made.assessment_id, "case_id": case.case_id, "participant_id": victim,
                         "level": made.conclusion.level, "assessor": "c1"}
    assert events(db, case.case_id)[0][1]["payload"]["status"] == "awaiting_approval"
    # The notes are stored, but no event and no audit record anywhere carries them.
    assert stored(uows, made.assessment_id).factors[0].notes == SECRET
    assert all(SECRET not in raw and "notes" not in body["payload"] for _, body, raw in events(db))
    with db.transaction() as conn:
        reasons = [r for (r,) in conn.execute(select(platform.audit_log.c.reason))]
    assert all(SECRET not in (r or "") for r in reasons)


def test_a_new_assessment_supersedes_only_that_participants_earlier_one(db, uows):
    cases = Cases()
    case = cases.open()
    victim, responsible = people(case)
    first = assess(uows, cases, case, victim, SENSITIVE)            # awaiting approval
    other = assess(uows, cases, case, responsible)                   # approved by the rules
    second = assess(uows, cases, case, victim)

    assert second.supersedes == first.assessment_id and second.status == "approved"
    old = stored(uows, first.assessment_id)
    assert old.status == "superseded" and old.version == 2
    assert old.expired_at == second.assessed_at and "superseded" in old.expiry_reason
    assert stored(uows, other.assessment_id).status == "approved"
    assert stored(uows, other.assessment_id).version == 1

    third = assess(uows, cases, case, victim, MEDIUM_HARM)
    assert third.supersedes == second.assessment_id
    assert [stored(uows, a.assessment_id).status for a in (first, second, third)] == [
        "superseded", "superseded", "approved"]
    # The first stays superseded, not superseded again.
    assert stored(uows, first.assessment_id).version == 2

    listed = services.list_assessments(uows, cases, COORDINATOR, case.case_id)
    assert [a.assessment_id for a in listed] == [a.assessment_id for a in (first, other, second, third)]
    current = services.list_assessments(uows, cases, COORDINATOR, case.case_id, current_only=True)
    assert {a.assessment_id for a in current} == {other.assessment_id, third.assessment_id}
    # A superseded assessment can no longer be approved.
    with pytest.raises(FailedPrecondition):
        services.review_assessment(uows, cases, MANAGER, assessment_id=first.assessment_id, approve=True)


@pytest.mark.parametrize("principal, refusal, audited", [
    (AUDITOR, PermissionDenied, True),
    (MANAGER, PermissionDenied, True),                 # approves, does not assess
    (OTHER_FACILITATOR, NotFound, True),               # not allocated to the case
    (OTHER_COUNTY_COORDINATOR, NotFound, True),
    (staff("admin", subject="ad1"), PermissionDenied, False),
    (SCHEDULING, PermissionDenied, False),
])
def test_only_coordinators_and_allocated_facilitators_assess(db, uows, principal, refusal, audited):
    cases = Cases()
    case = cases.open()
    victim = people(case)[0]
    with pytest.raises(refusal):
        assess(uows, cases, case, victim, principal=principal)
    assert services.list_assessments(uows, cases, COORDINATOR, case.case_id) == []
    assert event_types(db, case.case_id) == []
    refused = [(who, action) for who, action, _, _ in audits(db, case.case_id) if action == "risk.assess_refused"]
    assert refused == ([(principal.label, "risk.assess_refused")] if audited else [])
    # The allocated facilitator may.
    made = assess(uows, cases, case, victim, principal=FACILITATOR)
    assert made.assessor == "f-1" and made.status == "approved"


def test_nothing_is_recorded_when_the_cases_service_cannot_be_asked(db, uows):
    cases = Cases()
    case = cases.open()
    before = counts(db)
    cases.down = True
    with pytest.raises(Unavailable):
        assess(uows, cases, case, people(case)[0])
    assert counts(db) == before


# -- reviewing ------------------------------------------------------------------------------------
def test_four_eyes_and_who_may_review(db, uows):
    cases = Cases()
    case = cases.open()
    victim = people(case)[0]
    made = assess(uows, cases, case, victim, SENSITIVE)
    aid = made.assessment_id
    published = len(events(db))

    def unchanged():
        now = stored(uows, aid)
        assert (now.status, now.version, now.approved_by, now.rejected_by) == ("awaiting_approval", 1, None, None)
        assert len(events(db)) == published

    # The assessor is a coordinator: not an approver.
    with pytest.raises(PermissionDenied):
        services.review_assessment(uows, cases, COORDINATOR, assessment_id=aid, approve=True)
    unchanged()
    assert audits(db, aid)[-1] == ("staff:c1", "risk.approve_refused", COUNTY, "not a manager of the county")
    with pytest.raises(PermissionDenied):
        services.review_assessment(uows, cases, AUDITOR, assessment_id=aid, approve=False, reason="no")
    unchanged()
    assert audits(db, aid)[-1][:3] == ("staff:a1", "risk.reject_refused", COUNTY)
    # Another county's manager, and a facilitator, are told it does not exist.
    for outsider in (OTHER_COUNTY_MANAGER, FACILITATOR):
        with pytest.raises(NotFound):
            services.review_assessment(uows, cases, outsider, assessment_id=aid, approve=True)
        unchanged()
        assert audits(db, aid)[-1] == (outsider.label, "risk.approve_refused", None, None)
    # Nor does an assessment that does not exist.
    missing = str(uuid.uuid4())
    with pytest.raises(NotFound):
        services.review_assessment(uows, cases, MANAGER, assessment_id=missing, approve=True)
    assert audits(db, missing) == [("staff:m1", "risk.approve_refused", None, None)]

    # A manager who is also the coordinator that assessed may not approve their own assessment.
    both = staff("coordinator", "manager", subject="cm1")
    own = assess(uows, cases, case, people(case)[1], SENSITIVE, principal=both)
    for approve in (True, False):
        with pytest.raises(FailedPrecondition, match="assessor"):
            services.review_assessment(uows, cases, both, assessment_id=own.assessment_id, approve=approve,
                                       reason="mine")
    assert stored(uows, own.assessment_id).status == "awaiting_approval"
    assert [a for _, a, _, _ in audits(db, own.assessment_id)] == [
        "risk.assess", "risk.approve_refused", "risk.reject_refused"]

    approved = services.review_assessment(uows, cases, MANAGER, assessment_id=aid, approve=True)
    assert approved.status == "approved" and approved.approved_by == "m1" and approved.version == 2
    assert stored(uows, aid) == approved
    last_type, last_body, _ = events(db)[-1]
    assert last_type == "risk_approved" and last_body["payload"] == {
        "assessment_id": aid, "case_id": case.case_id, "participant_id": victim, "approved_by": "m1"}
    assert audits(db, aid)[-1] == ("staff:m1", "risk.approve", COUNTY, None)
    # Approved once is approved: a second review is refused and audited.
    with pytest.raises(FailedPrecondition):
        services.review_assessment(uows, cases, MANAGER, assessment_id=aid, approve=False, reason="changed mind")
    assert stored(uows, aid).status == "approved" and stored(uows, aid).version == 2
    assert audits(db, aid)[-1][:2] == ("staff:m1", "risk.reject_refused")


def test_a_review_of_a_stale_version_is_refused_not_lost(db, uows):
    cases = Cases()
    case = cases.open()
    made = assess(uows, cases, case, people(case)[0], SENSITIVE)
    with pytest.raises(ConcurrentChange):
        services.review_assessment(uows, cases, MANAGER, assessment_id=made.assessment_id, approve=True,
                                   expected_version=2)
    assert stored(uows, made.assessment_id).status == "awaiting_approval"
    assert "risk_approved" not in event_types(db, case.case_id)
    done = services.review_assessment(uows, cases, MANAGER, assessment_id=made.assessment_id, approve=True,
                                      expected_version=1)
    assert done.version == 2 and done.status == "approved"


def test_the_repository_refuses_to_overwrite_a_newer_version(db, uows):
    cases = Cases()
    case = cases.open()
    made = assess(uows, cases, case, people(case)[0])
    with uows() as uow:
        first = uow.assessments.get_for_update(made.assessment_id)
    with db.transaction() as conn:
        conn.execute(update(assessments).where(assessments.c.assessment_id == made.assessment_id)
                     .values(version=assessments.c.version + 1))
    with pytest.raises(ConcurrentChange):
        with uows() as uow:
            uow.assessments._loaded[made.assessment_id] = first.version
            first.expire("stale writer", datetime.now(timezone.utc))
            uow.assessments.save(first)
    again = stored(uows, made.assessment_id)
    assert (again.status, again.version) == ("approved", 2)


def test_a_rejection_needs_a_reason(db, uows):
    cases = Cases()
    case = cases.open()
    victim = people(case)[0]
    made = assess(uows, cases, case, victim, SENSITIVE)
    for blank in ("", "   "):
        with pytest.raises(ValidationFailed) as bad:
            services.review_assessment(uows, cases, MANAGER, assessment_id=made.assessment_id, approve=False,
                                       reason=blank)
        assert fields(bad) == ["reason"]
    assert stored(uows, made.assessment_id).status == "awaiting_approval"
    rejected = services.review_assessment(uows, cases, MANAGER, assessment_id=made.assessment_id, approve=False,
                                          reason="  the police have not confirmed the order  ")
    assert rejected.status == "rejected" and rejected.rejected_by == "m1"
    assert stored(uows, made.assessment_id).rejection_reason == "the police have not confirmed the order"
    assert event_types(db, case.case_id)[-1] == "risk_rejected"
    assert events(db, case.case_id)[-1][1]["payload"]["rejected_by"] == "m1"
    assert audits(db, made.assessment_id)[-1] == (
        "staff:m1", "risk.reject", COUNTY, "the police have not confirmed the order")
    # A rejected assessment clears nobody.
    answer = services.case_clearance(uows, SCHEDULING, county=COUNTY, case_id=case.case_id, stage="preparation",
                                     participant_ids=[victim])
    assert answer["participants"][victim]["cleared"] is False
    assert "rejected" in answer["participants"][victim]["reason"]


def test_an_assessment_that_ran_out_cannot_be_approved(db, uows):
    cases = Cases()
    case = cases.open()
    made = assess(uows, cases, case, people(case)[0], SENSITIVE)
    run_out(db, made.assessment_id)
    with pytest.raises(FailedPrecondition, match="ran out"):
        services.review_assessment(uows, cases, MANAGER, assessment_id=made.assessment_id, approve=True)
    assert stored(uows, made.assessment_id).status == "awaiting_approval"
    assert audits(db, made.assessment_id)[-1][:3] == ("staff:m1", "risk.approve_refused", COUNTY)


# -- lapsing --------------------------------------------------------------------------------------
def test_new_information_lapses_one_participant_or_the_whole_case(db, uows):
    cases = Cases()
    case = cases.open(roles=("victim", "responsible_person", "supporter"))
    victim, responsible, supporter = people(case)
    v = assess(uows, cases, case, victim)
    r = assess(uows, cases, case, responsible, SENSITIVE)
    s = assess(uows, cases, case, supporter)
    other_case = cases.open()
    elsewhere = assess(uows, cases, other_case, people(other_case)[0])

    lapsed = services.record_new_information(uows, cases, COORDINATOR, case_id=case.case_id,
                                             participant_id=victim, summary="police report a new threat")
    assert lapsed == [v.assessment_id]
    assert stored(uows, v.assessment_id).status == "expired"
    assert "police report a new threat" in stored(uows, v.assessment_id).expiry_reason
    assert [stored(uows, a.assessment_id).status for a in (r, s)] == ["awaiting_approval", "approved"]
    assert expired_events(db, case.case_id) == [(v.assessment_id, "new_information")]
    assert all("police report a new threat" not in raw for _, _, raw in events(db))

    # Again for the victim: nothing stands any more.
    assert services.record_new_information(uows, cases, FACILITATOR, case_id=case.case_id,
                                           participant_id=victim, summary="more") == []
    # The whole case: the rest lapse, another case's do not.
    lapsed = services.record_new_information(uows, cases, COORDINATOR, case_id=case.case_id, participant_id="",
                                             summary="the responsible person was arrested again")
    assert sorted(lapsed) == sorted([r.assessment_id, s.assessment_id])
    assert stored(uows, elsewhere.assessment_id).status == "approved"
    assert sorted(expired_events(db, case.case_id)) == sorted(
        [(a.assessment_id, "new_information") for a in (v, r, s)])
    assert [(who, action, reason) for who, action, _, reason in audits(db, case.case_id)
            if action == "risk.new_information"] == [
        ("staff:c1", "risk.new_information", "1 assessments lapsed"),
        ("staff:f-1", "risk.new_information", "0 assessments lapsed"),
        ("staff:c1", "risk.new_information", "2 assessments lapsed")]
    # Those who do not assess the case may not.
    with pytest.raises(PermissionDenied):
        services.record_new_information(uows, cases, AUDITOR, case_id=case.case_id, participant_id="",
                                        summary="x")
    with pytest.raises(NotFound):
        services.record_new_information(uows, cases, OTHER_COUNTY_COORDINATOR, case_id=case.case_id,
                                        participant_id="", summary="x")


def stage_changed(case, from_stage, to_stage, county=COUNTY):
    return new_event("cases", "stage_changed", county, {
        "case_id": case.case_id, "from_stage": from_stage, "to_stage": to_stage, "reason": "",
        "at": datetime.now(timezone.utc).isoformat(), "by": "staff:c1"})


def consent_withdrawn(case, participant_id, role="victim"):
    return new_event("cases", "consent_withdrawn", COUNTY, {
        "case_id": case.case_id, "participant_id": participant_id, "role": role, "stage": case.stage,
        "at": datetime.now(timezone.utc).isoformat()})


def case_closed(case, county=COUNTY):
    return new_event("cases", "case_closed", county, {
        "case_id": case.case_id, "referral_id": str(uuid.uuid4()), "reason": "completed", "after_rejection": False,
        "closed_at": datetime.now(timezone.utc).isoformat()})


def test_entering_a_stage_lapses_assessments_made_before_it_and_a_redelivery_changes_nothing(db, uows):
    cases = Cases()
    case = cases.open()
    victim, responsible = people(case)
    v1 = assess(uows, cases, case, victim)
    r1 = assess(uows, cases, case, responsible)
    # The case moves to preparation and the responsible person is assessed there before the
    # stage_changed event arrives.
    cases.move(case, "preparation")
    r2 = assess(uows, cases, case, responsible, SENSITIVE)
    assert r2.stage == "preparation" and stored(uows, r1.assessment_id).status == "superseded"

    moved = stage_changed(case, "risk_and_safety", "preparation")
    assert services.on_case_events(uows, [moved], "risk.on_stage_changed") == 1
    lapsed = stored(uows, v1.assessment_id)
    assert lapsed.status == "expired" and "risk_and_safety to preparation" in lapsed.expiry_reason
    assert stored(uows, r2.assessment_id).status == "awaiting_approval"        # made at preparation: kept
    assert stored(uows, r1.assessment_id).status == "superseded"                # history stays as it was
    assert expired_events(db, case.case_id) == [(v1.assessment_id, "stage")]
    payload = events(db, case.case_id)[-1][1]["payload"]
    assert payload["participant_id"] == victim and payload["case_id"] == case.case_id

    # A risk_and_safety assessment made since: the same event delivered again must not touch it.
    cases.move(case, "risk_and_safety")
    v2 = assess(uows, cases, case, victim)
    assert services.on_case_events(uows, [moved, moved], "risk.on_stage_changed") == 0
    assert stored(uows, v2.assessment_id).status == "approved"
    assert len(expired_events(db, case.case_id)) == 1

    # Moving on into intervention keeps what stands, whatever stage it was made at.
    cases.move(case, "preparation")
    into_intervention = stage_changed(case, "preparation", "intervention")
    assert services.on_case_events(uows, [into_intervention], "risk.on_stage_changed") == 0
    assert stored(uows, v2.assessment_id).status == "approved"
    assert stored(uows, r2.assessment_id).status == "awaiting_approval"

    # Another county's event, another case's and other event types change nothing here.
    other = cases.open()
    in_other = assess(uows, cases, other, people(other)[0])
    batch = [stage_changed(case, "risk_and_safety", "preparation", county=ELSEWHERE),
             new_event("cases", "case_opened", COUNTY, {"case_id": case.case_id}),
             stage_changed(other, "preparation", "intervention")]
    assert services.on_case_events(uows, batch, "risk.on_stage_changed") == 0
    assert stored(uows, v2.assessment_id).status == "approved"
    assert stored(uows, in_other.assessment_id).status == "approved"

    # A new stage_changed event (a new id) into preparation does lapse v2, made at risk_and_safety.
    again = stage_changed(case, "risk_and_safety", "preparation")
    assert services.on_case_events(uows, [again], "risk.on_stage_changed") == 1
    assert stored(uows, v2.assessment_id).status == "expired"
    assert stored(uows, r2.assessment_id).status == "awaiting_approval"
    assert expired_events(db, case.case_id) == [(v1.assessment_id, "stage"), (v2.assessment_id, "stage")]


def test_withdrawn_consent_lapses_only_that_participants_assessments(db, uows):
    cases = Cases()
    case = cases.open()
    victim, responsible = people(case)
    v = assess(uows, cases, case, victim, SENSITIVE)
    r = assess(uows, cases, case, responsible)
    withdrawn = consent_withdrawn(case, victim)
    assert services.on_case_events(uows, [withdrawn], "risk.on_consent_withdrawn") == 1
    assert stored(uows, v.assessment_id).status == "expired"
    assert stored(uows, v.assessment_id).expiry_reason == "consent withdrawn"
    assert stored(uows, r.assessment_id).status == "approved"
    assert expired_events(db, case.case_id) == [(v.assessment_id, "consent_withdrawn")]
    assert services.on_case_events(uows, [withdrawn], "risk.on_consent_withdrawn") == 0
    assert len(expired_events(db, case.case_id)) == 1


def test_closing_the_case_lapses_every_standing_assessment(db, uows):
    cases = Cases()
    case = cases.open()
    victim, responsible = people(case)
    v = assess(uows, cases, case, victim)
    r1 = assess(uows, cases, case, responsible, SENSITIVE)
    services.review_assessment(uows, cases, MANAGER, assessment_id=r1.assessment_id, approve=False, reason="no")
    r2 = assess(uows, cases, case, responsible, SENSITIVE)

    # The same event for a case of that id in another county finds nothing.
    assert services.on_case_events(uows, [case_closed(case, county=ELSEWHERE)], "risk.on_case_closed") == 0
    closed = case_closed(case)
    assert services.on_case_events(uows, [closed], "risk.on_case_closed") == 2
    assert [stored(uows, a.assessment_id).status for a in (v, r1, r2)] == ["expired", "rejected", "expired"]
    assert stored(uows, v.assessment_id).expiry_reason == "the case closed (completed)"
    assert sorted(expired_events(db, case.case_id)) == sorted(
        [(v.assessment_id, "closed"), (r2.assessment_id, "closed")])
    assert services.on_case_events(uows, [closed], "risk.on_case_closed") == 0
    assert services.on_case_events(uows, [stage_changed(case, "preparation", "closed")],
                                   "risk.on_stage_changed") == 0
    # No new assessment on a closed case.
    cases.move(case, "closed")
    with pytest.raises(FailedPrecondition, match="closed"):
        assess(uows, cases, case, victim)
    assert len(services.list_assessments(uows, cases, COORDINATOR, case.case_id)) == 3


def test_the_sweep_lapses_assessments_that_ran_out_exactly_once(db, uows):
    cases = Cases()
    case = cases.open(roles=("victim", "responsible_person", "supporter"))
    victim, responsible, supporter = people(case)
    a = assess(uows, cases, case, victim)
    b = assess(uows, cases, case, responsible, SENSITIVE)
    fresh = assess(uows, cases, case, supporter)
    run_out(db, a.assessment_id)
    run_out(db, b.assessment_id, ago=timedelta(days=3))

    first = services.sweep_expired(uows)
    second = services.sweep_expired(uows)
    assert first >= 2 and second == 0
    assert [stored(uows, x.assessment_id).status for x in (a, b, fresh)] == ["expired", "expired", "approved"]
    assert "validity ran out" in stored(uows, a.assessment_id).expiry_reason
    assert sorted(expired_events(db, case.case_id)) == sorted([(a.assessment_id, "time"), (b.assessment_id, "time")])
    for x in (a, b):
        assert [(who, action) for who, action, _, _ in audits(db, x.assessment_id)
                if action == "risk.expire"] == [("system:risk", "risk.expire")]
    assert audits(db, fresh.assessment_id)[-1][1] == "risk.assess"
    # Run out, it clears nobody.
    answer = services.case_clearance(uows, SCHEDULING, county=COUNTY, case_id=case.case_id, stage="preparation",
                                     participant_ids=[victim, supporter])
    assert {p: x["cleared"] for p, x in answer["participants"].items()} == {victim: False, supporter: True}


# -- case clearance and the safety gate -----------------------------------------------------------
def test_case_clearance_answers_per_participant_and_only_to_services(db, uows):
    cases = Cases()
    case = cases.open(roles=("victim", "responsible_person", "supporter"))
    victim, responsible, supporter = people(case)
    assess(uows, cases, case, victim)
    waiting = assess(uows, cases, case, responsible, SENSITIVE)

    def ask(principal=SCHEDULING, county=COUNTY):
        answer = services.case_clearance(uows, principal, county=county, case_id=case.case_id, stage="preparation",
                                         participant_ids=[victim, responsible, supporter])
        return answer["participants"]

    answer = ask()
    assert set(answer) == {victim, responsible, supporter}
    assert answer[victim]["cleared"] is True and "cleared by assessment" in answer[victim]["reason"]
    assert answer[responsible]["cleared"] is False and "awaiting" in answer[responsible]["reason"]
    assert answer[supporter] == {"cleared": False, "reason": "no current approved risk assessment "
                                                             "(none has been made)"}
    services.review_assessment(uows, cases, MANAGER, assessment_id=waiting.assessment_id, approve=True)
    after = ask()
    assert [after[p]["cleared"] for p in (victim, responsible, supporter)] == [True, True, False]
    # Asked about another county, this case's assessments are not there.
    assert not any(x["cleared"] for x in ask(county=ELSEWHERE).values())
    with pytest.raises(PermissionDenied):
        ask(principal=service(counties=(ELSEWHERE,)))
    for person in (COORDINATOR, MANAGER):
        with pytest.raises(PermissionDenied):
            ask(principal=person)
    clearances = [(who, county, reason) for who, action, county, reason in audits(db, case.case_id)
                  if action == "risk.clearance"]
    assert len(clearances) == 3 and clearances[0][:2] == ("service:scheduling", COUNTY)
    assert clearances[0][2].startswith("to preparation: ") and f"{victim}=cleared" in clearances[0][2]
    assert f"{supporter}=not cleared" in clearances[0][2]


def test_the_gate_answers_a_service_and_denies_on_any_doubt(db, uows):
    cases = Cases()
    case = cases.open(stage="preparation")
    victim, responsible = people(case)
    assess(uows, cases, case, victim, MEDIUM_HARM)       # co_facilitation, separate_arrival_and_waiting
    assess(uows, cases, case, responsible)

    def gate(source=cases, principal=SCHEDULING, county=COUNTY, ids=(victim, responsible),
             plan=("co_facilitation", "separate_arrival_and_waiting"), kind="conference"):
        return services.check_meeting_safety(uows, source, principal, case_id=case.case_id,
                                             participant_ids=list(ids), meeting_kind=kind,
                                             plan_measures=list(plan), county=county)

    allowed = gate()
    assert allowed.allowed and len(allowed.reasons) == 2
    assert audits(db, case.case_id)[-1][:3] == ("service:scheduling", "risk.gate_allow", COUNTY)

    short = gate(plan=("co_facilitation",))
    assert not short.allowed
    assert short.reasons == (f"participant {victim}: the plan does not provide: separate arrival and waiting "
                             "rooms",)
    stranger = str(uuid.uuid4())
    denied = gate(ids=(victim, stranger))
    assert not denied.allowed and denied.reasons == (f"{stranger}: not a participant of this case",)

    down = gate(source=Cases(down=True))
    assert not down.allowed and "did not answer" in down.reasons[0]
    assert audits(db, case.case_id)[-1] == ("service:scheduling", "risk.gate_deny", None, down.reasons[0])
    unknown = gate(source=Cases())
    assert not unknown.allowed and "not found" in unknown.reasons[0]
    elsewhere = gate(county=ELSEWHERE)
    assert not elsewhere.allowed

    with pytest.raises(PermissionDenied):
        gate(principal=service(counties=(ELSEWHERE,)))
    with pytest.raises(PermissionDenied):
        gate(county="")
    # Indirect and preparation meetings, by the same rules.
    assert gate(kind="indirect_session", plan=()).allowed
    assert gate(kind="preparation_visit", plan=()).allowed
    assert gate(kind="supervision", ids=(), plan=()).allowed


def test_the_gate_for_staff_follows_their_access(db, uows):
    cases = Cases()
    case = cases.open(stage="preparation")
    victim, responsible = people(case)
    assess(uows, cases, case, victim)
    waiting = assess(uows, cases, case, responsible, SENSITIVE)

    def gate(principal=COORDINATOR, source=cases):
        return services.check_meeting_safety(uows, source, principal, case_id=case.case_id,
                                             participant_ids=[victim, responsible], meeting_kind="conference",
                                             plan_measures=["separate_arrival_and_waiting",
                                                            "specialist_facilitator"])

    denied = gate()
    assert not denied.allowed
    assert denied.reasons == (f"participant {responsible}: assessment awaiting a manager's approval "
                              f"({waiting.assessment_id})",)
    services.review_assessment(uows, cases, MANAGER, assessment_id=waiting.assessment_id, approve=True)
    assert gate().allowed and gate(principal=FACILITATOR).allowed and gate(principal=MANAGER).allowed
    with pytest.raises(Unavailable):
        gate(source=Cases(down=True))
    for outsider in (OTHER_COUNTY_COORDINATOR, OTHER_FACILITATOR):
        with pytest.raises(NotFound):
            gate(principal=outsider)
    assert audits(db, case.case_id)[-1] == ("staff:f-2", "risk.gate_refused", None, None)


def test_an_auditor_may_not_ask_the_gate(db, uows):
    cases = Cases()
    case = cases.open(stage="preparation")
    with pytest.raises(PermissionDenied):
        services.check_meeting_safety(uows, cases, AUDITOR, case_id=case.case_id, participant_ids=people(case),
                                      meeting_kind="indirect_session", plan_measures=[])


def test_a_manager_may_record_new_information(db, uows):
    cases = Cases()
    case = cases.open()
    made = assess(uows, cases, case, people(case)[0])
    assert services.record_new_information(uows, cases, MANAGER, case_id=case.case_id, participant_id="",
                                           summary="the order was varied") == [made.assessment_id]


# -- reading ----------------------------------------------------------------------------------------
def test_reading_is_scoped_to_the_county_and_the_allocated_facilitators(db, uows):
    cases = Cases()
    case = cases.open()
    made = assess(uows, cases, case, people(case)[0])
    for reader in (COORDINATOR, MANAGER, AUDITOR, FACILITATOR):
        assert services.get_assessment(uows, cases, reader, made.assessment_id) == made
        assert [a.assessment_id for a in services.list_assessments(uows, cases, reader, case.case_id)] == [
            made.assessment_id]
    for outsider in (OTHER_FACILITATOR, OTHER_COUNTY_MANAGER):
        with pytest.raises(NotFound):
            services.get_assessment(uows, cases, outsider, made.assessment_id)
        assert services.list_assessments(uows, cases, outsider, case.case_id) == []
    assert audits(db, made.assessment_id)[-1] == ("staff:m9", "risk.read_refused", None, None)
    with pytest.raises(PermissionDenied):
        services.get_assessment(uows, cases, staff("admin"), made.assessment_id)


# -- bad input ------------------------------------------------------------------------------------
def _record(factors=None, case_id=None, participant_id=None):
    def call(uows, cases, case):
        return services.record_assessment(
            uows, cases, COORDINATOR, case_id=case.case_id if case_id is None else case_id,
            participant_id=people(case)[0] if participant_id is None else participant_id,
            factors=[] if factors is None else factors, valid_days=VALID_DAYS)
    return call


def _factor(**changes):
    f = {"kind": "emotional_harm", "severity": "low", "source": "police", "notes": ""}
    f.update(changes)
    return f


def _review(assessment_id=None, approve=True, reason="", expected_version=0):
    def call(uows, cases, case):
        return services.review_assessment(uows, cases, MANAGER,
                                          assessment_id=str(uuid.uuid4()) if assessment_id is None else assessment_id,
                                          approve=approve, reason=reason, expected_version=expected_version)
    return call


def _new_information(case_id=None, participant_id="", summary="new facts"):
    def call(uows, cases, case):
        return services.record_new_information(uows, cases, COORDINATOR,
                                               case_id=case.case_id if case_id is None else case_id,
                                               participant_id=participant_id, summary=summary)
    return call


def _gate(case_id=None, ids=None, kind="conference", plan=(), principal=SCHEDULING):
    def call(uows, cases, case):
        return services.check_meeting_safety(uows, cases, principal,
                                             case_id=case.case_id if case_id is None else case_id,
                                             participant_ids=people(case) if ids is None else ids,
                                             meeting_kind=kind, plan_measures=list(plan), county=COUNTY)
    return call


def _clearance(case_id=None, ids=None):
    def call(uows, cases, case):
        return services.case_clearance(uows, SCHEDULING, county=COUNTY,
                                       case_id=case.case_id if case_id is None else case_id, stage="preparation",
                                       participant_ids=people(case) if ids is None else ids)
    return call


SAME = "8c1e2a36-7c55-4f43-9c5e-0b6f1f1b9c11"
BAD_INPUT = {
    "record: case_id": (_record(case_id="case-1"), ["case_id"]),
    "record: participant_id": (_record(participant_id=""), ["participant_id"]),
    "record: both ids": (_record(case_id="", participant_id="x"), ["case_id", "participant_id"]),
    "record: a stranger": (_record(participant_id=str(uuid.uuid4())), ["participant_id"]),
    "record: factor kind": (_record([_factor(kind="bad_vibes")]), ["factors[0].kind"]),
    "record: a factor twice": (_record([_factor(), _factor(severity="high")]), ["factors[1].kind"]),
    "record: severity": (_record([_factor(severity="extreme")]), ["factors[0].severity"]),
    "record: source": (_record([_factor(source="rumour")]), ["factors[0].source"]),
    "record: everything wrong": (_record([_factor(kind="", severity="", source="")]),
                                 ["factors[0].kind", "factors[0].severity", "factors[0].source"]),
    "record: long notes": (_record([_factor(notes="x" * 4001)]), ["factors[0].notes"]),
    "record: NUL in notes": (_record([_factor(notes="a\x00b")]), ["factors[0].notes"]),
    "record: too many factors": (_record([_factor()] * 41), ["factors"]),
    "review: assessment_id": (_review(assessment_id="nope"), ["assessment_id"]),
    "review: rejection without reason": (_review(approve=False, reason=" "), ["reason"]),
    "review: long reason": (_review(reason="x" * 4001), ["reason"]),
    "review: negative version": (_review(expected_version=-1), ["expected_version"]),
    "new information: case_id": (_new_information(case_id="x"), ["case_id"]),
    "new information: participant_id": (_new_information(participant_id="x"), ["participant_id"]),
    "new information: a stranger": (_new_information(participant_id=str(uuid.uuid4())), ["participant_id"]),
    "new information: summary": (_new_information(summary="  "), ["summary"]),
    "gate: case_id": (_gate(case_id="x"), ["case_id"]),
    "gate: meeting_kind": (_gate(kind="party"), ["meeting_kind"]),
    "gate: no participants": (_gate(ids=[]), ["participant_ids"]),
    "gate: a participant id": (_gate(ids=["x"]), ["participant_ids[0]"]),
    "gate: a participant twice": (_gate(ids=[SAME, SAME]), ["participant_ids"]),
    "gate: too many participants": (_gate(ids=[str(uuid.uuid4()) for _ in range(21)]), ["participant_ids"]),
    "gate: indirect_only in a plan": (_gate(plan=["indirect_only"]), ["plan_measures[0]"]),
    "gate: unknown measure": (_gate(plan=["co_facilitation", "teleport"]), ["plan_measures[1]"]),
    "gate: staff, bad case_id": (_gate(case_id="", principal=COORDINATOR), ["case_id"]),
    "clearance: case_id": (_clearance(case_id="x"), ["case_id"]),
    "clearance: a participant id": (_clearance(ids=["x"]), ["participant_ids[0]"]),
    "get: assessment_id": (lambda uows, cases, case: services.get_assessment(uows, cases, COORDINATOR, "1"),
                           ["assessment_id"]),
    "list: case_id": (lambda uows, cases, case: services.list_assessments(uows, cases, COORDINATOR, "1"),
                      ["case_id"]),
}


@pytest.mark.parametrize("name", list(BAD_INPUT))
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(db, uows, name):
    call, expected = BAD_INPUT[name]
    cases = Cases()
    case = cases.open()
    before = counts(db)
    with pytest.raises(ValidationFailed) as bad:
        call(uows, cases, case)
    assert fields(bad) == expected
    assert counts(db) == before


# -- configuration against the domain --------------------------------------------------------------
def test_every_validity_the_configuration_accepts_can_be_recorded(db, uows):
    from mend_common.config import ConfigError
    try:
        settings = risk_settings({"MEND_RISK_ASSESSMENT_VALID_DAYS": "400"})
    except ConfigError:
        return                  # refused at start-up: fine
    cases = Cases()
    case = cases.open()
    made = services.record_assessment(uows, cases, COORDINATOR, case_id=case.case_id,
                                      participant_id=people(case)[0], factors=[], valid_days=settings.valid_days)
    assert made.expires_at == made.assessed_at + timedelta(days=400)
