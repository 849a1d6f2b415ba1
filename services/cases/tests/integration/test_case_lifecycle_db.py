"""A case file from eligibility to closure through the real repository, migrations and unit of
work, on SQLite and on PostgreSQL: what is stored, published and audited, who may do what, and
the timers' sweeps. Only the risk service and the facilitator register (other services, not
built yet or not running here) are stand-ins."""
from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text, update

from mend_common.auth import Principal
from mend_common.db import Database
from mend_common.envelope import new_event
from mend_common.errors import (ConditionsNotMet, NotFound, PermissionDenied, Unavailable, ValidationFailed)
from mend_common.migrations import upgrade
from mend_common.outbox import PlatformStore
from mend_common.registry import load_definition
from mend_common.testing.plugin import PostgresDatabase
from mend_common.uow import UnitsOfWork
from mend_cases.adapters.tables import case_clocks, case_notes, case_outcome_items, metadata, platform
from mend_cases.domain.allocation import FacilitatorRecord
from mend_cases.domain.lifecycle import RiskClearance
from mend_cases.service_layer import services
from mend_cases.service_layer.unit_of_work import CasesUnitOfWork

COUNTY = "cumbria"
TODAY = datetime.now(timezone.utc).date()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request, tmp_path_factory):
    if request.param == "sqlite":
        url, pg = f"sqlite:///{tmp_path_factory.mktemp('cases')}/cases.db", None
    else:
        pg = PostgresDatabase(f"mend_cases_{uuid.uuid4().hex[:10]}").create()
        url = pg.url
    upgrade(load_definition("cases"), url)
    database = Database(url, "cases", pool_size=4)
    yield database
    database.dispose()
    if pg:
        pg.drop()


@pytest.fixture
def uows(db):
    store = PlatformStore(db, platform, "cases")
    return UnitsOfWork(lambda: CasesUnitOfWork(db, store))


def staff(*roles, subject="c1", counties=(COUNTY,)) -> Principal:
    return Principal(kind="staff", subject=subject, roles=frozenset(roles), counties=frozenset(counties))


COORDINATOR = staff("coordinator")
MANAGER = staff("manager", subject="m1")


class Risk:
    """Stand-in for the risk service's answer."""

    def __init__(self, cleared=True, unavailable=""):
        self.cleared, self.unavailable, self.asked = cleared, unavailable, []

    def clearance(self, case, to_stage):
        self.asked.append((case.case_id, to_stage))
        if self.unavailable:
            return RiskClearance(unavailable=self.unavailable)
        return RiskClearance(cleared={p.participant_id: self.cleared for p in case.participants})


class Register:
    """Stand-in for the facilitator register in the scheduling service."""

    def __init__(self, down=False):
        self.down = down
        self.records_by_id = {
            "f-lead": FacilitatorRecord("f-lead", COUNTY, True, TODAY + timedelta(days=200), "advanced", "Lee"),
            "f-co": FacilitatorRecord("f-co", COUNTY, True, TODAY + timedelta(days=30), "foundation", "Cy"),
            "f-lapsed": FacilitatorRecord("f-lapsed", COUNTY, True, TODAY - timedelta(days=1), "advanced", "Lapsed"),
            "f-away": FacilitatorRecord("f-away", "lancashire", True, TODAY + timedelta(days=90), "advanced", "Away"),
        }

    def records(self, county, ids):
        if self.down:
            raise Unavailable("the facilitator register (scheduling service) could not be asked: timed out")
        return {i: self.records_by_id[i] for i in ids if i in self.records_by_id}


def referral_received(reported: str | None = None, flags: dict | None = None, vulnerable=False):
    offence = {"type": "burglary dwelling", "category": "burglary", "date": "2026-01-05", "reported_date": reported,
               "domestic_abuse": False, "sexual_offence": False, "hate_crime": False, "serious_violence": False}
    offence.update(flags or {})
    referral = {"agency_reference": "CUM-1", "county": COUNTY, "offence": offence, "initiated_by": "victim_led",
                "participants": [
                    {"role": "victim", "given_name": "Ann", "family_name": "Smith", "age": 40,
                     "vulnerabilities": ["intimidated"] if vulnerable else [], "consent_to_contact": True,
                     "contact": {"email": "ann@example.org", "preferred_channel": "email"}},
                    {"role": "responsible_person", "given_name": "Bob", "family_name": "Jones", "age": 17,
                     "vulnerabilities": [], "consent_to_contact": True, "contact": {}}]}
    return new_event("referrals", "referral_received", COUNTY, {
        "referral_id": str(uuid.uuid4()), "agency_id": str(uuid.uuid4()),
        "received_at": datetime.now(timezone.utc).isoformat(), "referral": referral})


def open_case(uows, **kwargs):
    return services.open_case_for_referral(uows, referral_received(**kwargs), "cases.on_referral_received")


def outbox(db, case_id):
    with db.transaction() as conn:
        rows = conn.execute(select(platform.outbox.c.body).order_by(platform.outbox.c.id)).all()
    bodies = [json.loads(r[0]) for r in rows]
    return [b for b in bodies if b["payload"].get("case_id") == case_id]


def audits(db, case_id):
    with db.transaction() as conn:
        return [(r.principal, r.action) for r in conn.execute(
            select(platform.audit_log).where(platform.audit_log.c.resource_id == case_id)
            .order_by(platform.audit_log.c.id))]


def ids(case):
    victim = case.parties("victim")[0].participant_id
    responsible = case.parties("responsible_person")[0].participant_id
    return victim, responsible


def test_migrations_build_exactly_the_tables_the_code_declares(db):
    with db.engine.connect() as conn:
        if db.is_postgres:
            conn.execute(text('SET search_path TO "cases"'))
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
    assert diff == []


def test_a_case_runs_from_eligibility_to_closure(db, uows):
    case = open_case(uows, reported="2026-01-06")
    victim, responsible = ids(case)
    risk, register = Risk(), Register()
    cid = case.case_id

    case = services.decide_eligibility(uows, COORDINATOR, cid, accepted=True, facts_acknowledged=True, reason="ok")
    assert case.stage == "contact_and_information"
    assert [h.stage for h in case.history] == ["referral_received", "eligibility", "contact_and_information"]

    with pytest.raises(ConditionsNotMet) as refused:
        services.move_stage(uows, risk, COORDINATOR, cid, to_stage="consent", reason="")
    assert [c for c, _ in refused.value.missing] == ["information_offered", "information_offered"]
    assert "victim Ann Smith" in refused.value.message and "responsible person Bob Jones" in refused.value.message

    for pid in (victim, responsible):
        services.record_information_offered(uows, COORDINATOR, cid, participant_id=pid)
    services.record_support_referral(uows, COORDINATOR, cid, participant_id=victim)
    case = services.move_stage(uows, risk, COORDINATOR, cid, to_stage="consent", reason="information given")

    services.record_consent(uows, COORDINATOR, cid, participant_id=victim, status="given", method="written")
    with pytest.raises(ConditionsNotMet) as refused:
        services.move_stage(uows, risk, COORDINATOR, cid, to_stage="risk_and_safety", reason="")
    assert refused.value.missing == [("consent_given",
                                      "no consent from the responsible person Bob Jones (consent not requested)")]
    services.record_consent(uows, COORDINATOR, cid, participant_id=responsible, status="requested", method="")
    services.record_consent(uows, COORDINATOR, cid, participant_id=responsible, status="given", method="verbal")
    services.move_stage(uows, risk, COORDINATOR, cid, to_stage="risk_and_safety", reason="")
    assert risk.asked == []          # no risk question before the stage that needs one

    services.move_stage(uows, risk, COORDINATOR, cid, to_stage="preparation", reason="assessed")
    assert risk.asked == [(cid, "preparation")]
    with pytest.raises(ConditionsNotMet) as refused:
        services.move_stage(uows, risk, COORDINATOR, cid, to_stage="intervention", reason="")
    assert {c for c, _ in refused.value.missing} == {"facilitators_allocated", "intervention_kind_chosen"}

    services.allocate_facilitators(uows, register, COORDINATOR, cid, facilitator_ids=["f-lead", "f-co"])
    services.choose_intervention(uows, COORDINATOR, cid, kind="direct_conference")
    services.move_stage(uows, risk, COORDINATOR, cid, to_stage="intervention", reason="conference held")
    facilitator = staff("facilitator", subject="f-co")
    services.move_stage(uows, risk, COORDINATOR, cid, to_stage="outcome_agreement", reason="")
    case = services.add_outcome_item(uows, facilitator, cid, kind="apology", description="letter of apology",
                                     owner_participant_id=responsible,
                                     due_on=(TODAY + timedelta(days=14)).isoformat())
    item = case.outcome_items[0].item_id
    services.move_stage(uows, risk, COORDINATOR, cid, to_stage="follow_up", reason="")
    with pytest.raises(ConditionsNotMet) as refused:
        services.close_case(uows, COORDINATOR, cid, reason="completed")
    assert {c for c, _ in refused.value.missing} == {"follow_up_recorded", "outcome_items_settled"}
    services.update_outcome_item(uows, facilitator, cid, item_id=item, status="completed")
    services.record_follow_up(uows, facilitator, cid, support_given="call", signposted_to=["Victim Support"],
                              satisfaction="satisfied")
    case = services.close_case(uows, COORDINATOR, cid, reason="completed", note="all done")
    assert case.stage == "closed" and case.closure.reason == "completed"

    stored = services.get_case(uows, MANAGER, cid)
    assert [h.stage for h in stored.history] == [
        "referral_received", "eligibility", "contact_and_information", "consent", "risk_and_safety", "preparation",
        "intervention", "outcome_agreement", "follow_up", "closed"]
    assert all(h.by == "staff:c1" for h in stored.history[1:])
    assert [a.facilitator_id for a in stored.facilitators] == ["f-lead", "f-co"] and stored.facilitators[0].lead
    assert [(r.status, r.method) for r in stored.participant(responsible).consent_history] == [
        ("requested", ""), ("given", "verbal")]
    assert stored.outcome_items[0].status == "completed" and stored.follow_up.signposted_to == ["Victim Support"]
    assert all(c.met_at is not None for c in stored.clocks)

    events = [e["type"] for e in outbox(db, cid)]
    assert events.count("stage_changed") == 9
    for expected in ("case_opened", "eligibility_decided", "consent_recorded", "facilitators_allocated",
                     "case_closed"):
        assert expected in events
    closed = [e for e in outbox(db, cid) if e["type"] == "case_closed"][0]["payload"]
    assert closed["reason"] == "completed" and closed["after_rejection"] is False
    actions = [a for _, a in audits(db, cid)]
    assert "case.decide_eligibility" in actions and "case.close_case" in actions and "case.read" in actions
    assert "case.move_stage_refused" in actions

    # Closed: read-only but for retention actions.
    with pytest.raises(ConditionsNotMet, match="closed"):
        services.add_note(uows, COORDINATOR, cid, body="too late")
    with pytest.raises(PermissionDenied):
        services.set_retention_hold(uows, COORDINATOR, cid, hold=True, reason="complaint")
    assert services.set_retention_hold(uows, MANAGER, cid, hold=True, reason="complaint pending").retention_hold


def test_rejection_closes_the_case_and_tells_the_referrer(db, uows):
    case = open_case(uows)
    with pytest.raises(ValidationFailed) as bad:
        services.decide_eligibility(uows, COORDINATOR, case.case_id, accepted=False, facts_acknowledged=False,
                                    reason=" ")
    assert [v.field for v in bad.value.violations] == ["reason"]
    closed = services.decide_eligibility(uows, COORDINATOR, case.case_id, accepted=False, facts_acknowledged=False,
                                         reason="the responsible person denies the offence")
    assert closed.stage == "closed" and closed.closure.reason == "unsuitable" and closed.closure.after_rejection
    events = {e["type"]: e["payload"] for e in outbox(db, case.case_id)}
    assert events["eligibility_decided"]["decision"] == "rejected"
    assert events["eligibility_decided"]["referral_id"] == case.referral_id
    assert events["case_closed"]["after_rejection"] is True


def test_acceptance_needs_the_facts_acknowledged_and_nothing_is_written_when_refused(db, uows):
    case = open_case(uows)
    before = len(outbox(db, case.case_id))
    with pytest.raises(ConditionsNotMet) as refused:
        services.decide_eligibility(uows, COORDINATOR, case.case_id, accepted=True, facts_acknowledged=False, reason="")
    assert "acknowledged the basic facts" in refused.value.message
    stored = services.get_case(uows, COORDINATOR, case.case_id)
    assert stored.stage == "referral_received" and stored.eligibility is None and len(stored.history) == 1
    assert len(outbox(db, case.case_id)) == before
    assert audits(db, case.case_id)[-2] == ("staff:c1", "case.decide_eligibility_refused")


def _to_consent(uows, case):
    services.decide_eligibility(uows, COORDINATOR, case.case_id, accepted=True, facts_acknowledged=True, reason="")
    for pid in ids(case):
        services.record_information_offered(uows, COORDINATOR, case.case_id, participant_id=pid)
    services.move_stage(uows, Risk(), COORDINATOR, case.case_id, to_stage="consent", reason="")


def test_withdrawal_stops_the_process_and_is_published(db, uows):
    case = open_case(uows)
    victim, responsible = ids(case)
    _to_consent(uows, case)
    for pid in (victim, responsible):
        services.record_consent(uows, COORDINATOR, case.case_id, participant_id=pid, status="given", method="verbal")
    services.move_stage(uows, Risk(), COORDINATOR, case.case_id, to_stage="risk_and_safety", reason="")
    stored = services.record_consent(uows, COORDINATOR, case.case_id, participant_id=victim, status="withdrawn",
                                     method="", note="no longer wishes to take part")
    assert stored.participant(victim).process_stopped
    withdrawn = [e for e in outbox(db, case.case_id) if e["type"] == "consent_withdrawn"]
    assert len(withdrawn) == 1 and withdrawn[0]["payload"]["participant_id"] == victim
    assert withdrawn[0]["payload"]["stage"] == "risk_and_safety"
    with pytest.raises(ConditionsNotMet) as refused:
        services.move_stage(uows, Risk(), COORDINATOR, case.case_id, to_stage="preparation", reason="")
    assert "no consent from the victim Ann Smith (consent withdrawn)" in refused.value.message


def test_risk_service_unavailable_refuses_the_move(db, uows):
    case = open_case(uows)
    _to_consent(uows, case)
    for pid in ids(case):
        services.record_consent(uows, COORDINATOR, case.case_id, participant_id=pid, status="given", method="verbal")
    services.move_stage(uows, Risk(), COORDINATOR, case.case_id, to_stage="risk_and_safety", reason="")
    for risk in (Risk(unavailable="RpcTimeout: risk.case_clearance timed out"), Risk(cleared=False)):
        with pytest.raises(ConditionsNotMet) as refused:
            services.move_stage(uows, risk, COORDINATOR, case.case_id, to_stage="preparation", reason="")
        assert refused.value.missing[0][0] == "risk_assessment_approved"
    assert services.get_case(uows, COORDINATOR, case.case_id).stage == "risk_and_safety"


def test_allocation_checks_each_facilitator_and_fails_closed(db, uows):
    case = open_case(uows, flags={"domestic_abuse": True})
    services.decide_eligibility(uows, COORDINATOR, case.case_id, accepted=True, facts_acknowledged=True, reason="")
    with pytest.raises(ConditionsNotMet) as refused:
        services.allocate_facilitators(uows, Register(), COORDINATOR, case.case_id,
                                       facilitator_ids=["f-co", "f-lapsed"])
    rules = {c for c, _ in refused.value.missing}
    assert rules == {"facilitator_training", "facilitator_vetting"}      # f-co foundation; f-lapsed expired
    with pytest.raises(ConditionsNotMet) as refused:
        services.allocate_facilitators(uows, Register(), COORDINATOR, case.case_id, facilitator_ids=["f-away"])
    assert "does not work in cumbria" in refused.value.message
    with pytest.raises(Unavailable):
        services.allocate_facilitators(uows, Register(down=True), COORDINATOR, case.case_id,
                                       facilitator_ids=["f-lead"])
    with pytest.raises(ValidationFailed):
        services.allocate_facilitators(uows, Register(), COORDINATOR, case.case_id,
                                       facilitator_ids=["f-lead", "f-co", "f-away"])
    stored = services.allocate_facilitators(uows, Register(), COORDINATOR, case.case_id, facilitator_ids=["f-lead"])
    assert stored.allocated_facilitators == ["f-lead"]
    # The allocated facilitator now sees the case and may write notes; another does not.
    lead = staff("facilitator", subject="f-lead")
    assert services.get_case(uows, lead, case.case_id).case_id == case.case_id
    with pytest.raises(NotFound):
        services.get_case(uows, staff("facilitator", subject="f-co"), case.case_id)
    with pytest.raises(PermissionDenied):
        services.move_stage(uows, Risk(), lead, case.case_id, to_stage="consent", reason="")
    note = services.add_note(uows, lead, case.case_id, body="first visit went well")
    fix = services.add_note(uows, lead, case.case_id, body="first visit: the victim's mother attended",
                            corrects_note_id=note.note_id)
    notes = services.list_notes(uows, COORDINATOR, case.case_id)
    assert [(n.note_id, n.corrects_note_id) for n in notes] == [(note.note_id, None), (fix.note_id, note.note_id)]
    with pytest.raises(NotFound):
        services.add_note(uows, lead, case.case_id, body="x", corrects_note_id=str(uuid.uuid4()))


@pytest.mark.parametrize("principal", [
    staff("coordinator", counties=("lancashire",)), staff("admin"), staff("facilitator", subject="nobody"),
    Principal(kind="agency", subject="a1", roles=frozenset({"partner"}), counties=frozenset({COUNTY}))])
def test_those_who_may_not_see_a_case_can_neither_read_nor_change_it(db, uows, principal):
    case = open_case(uows)
    for attempt in (
            lambda: services.get_case(uows, principal, case.case_id),
            lambda: services.list_notes(uows, principal, case.case_id),
            lambda: services.decide_eligibility(uows, principal, case.case_id, accepted=True,
                                                facts_acknowledged=True, reason=""),
            lambda: services.add_note(uows, principal, case.case_id, body="hello")):
        with pytest.raises((NotFound, PermissionDenied)):
            attempt()
    assert services.get_case(uows, COORDINATOR, case.case_id).stage == "referral_received"


def test_auditors_read_but_do_not_change(db, uows):
    case = open_case(uows)
    auditor = staff("auditor", subject="a1")
    assert services.get_case(uows, auditor, case.case_id).case_id == case.case_id
    with pytest.raises(PermissionDenied):
        services.add_note(uows, auditor, case.case_id, body="hello")


def test_victims_code_clocks_are_swept_once_and_met_late_is_a_breach(db, uows):
    # Reported long ago: both clocks already past their last day.
    late = open_case(uows, reported=(TODAY - timedelta(days=30)).isoformat(), vulnerable=True)
    fresh = open_case(uows, reported=TODAY.isoformat())
    victim = ids(late)[0]
    info = next(c for c in late.clocks if c.kind == "rj_information")
    fresh_info = next(c for c in fresh.clocks if c.kind == "rj_information")
    assert fresh_info.due_on > TODAY and info.due_on < TODAY
    # An enhanced-rights victim's information clock is one working day.
    assert info.due_on == __import__("mend_cases.domain.working_days", fromlist=["x"]).add_working_days(
        info.started_on, 1)

    services.record_information_offered(uows, COORDINATOR, late.case_id, participant_id=victim)
    breaches = [e for e in outbox(db, late.case_id) if e["type"] == "victims_code_breach"]
    assert [(b["payload"]["clock"], b["payload"]["met_late"]) for b in breaches] == [("rj_information", True)]

    first = services.sweep_due(uows)
    second = services.sweep_due(uows)
    assert second["clocks_breached"] == 0
    breaches = [e for e in outbox(db, late.case_id) if e["type"] == "victims_code_breach"]
    assert sorted(b["payload"]["clock"] for b in breaches) == ["rj_information", "support_referral"]
    assert first["clocks_breached"] >= 1
    assert not [e for e in outbox(db, fresh.case_id) if e["type"] == "victims_code_breach"]

    found, _ = services.list_cases(uows, COORDINATOR, county="", stage=None, page_size=200, page_token="",
                                   breached_only=True)
    assert late.case_id in {c.case_id for c in found} and fresh.case_id not in {c.case_id for c in found}
    due_soon, _ = services.list_cases(uows, COORDINATOR, county="", stage=None, page_size=200, page_token="",
                                      clock_due_by=fresh_info.due_on.isoformat())
    assert fresh.case_id in {c.case_id for c in due_soon}


def test_overdue_outcome_items_are_published_once(db, uows):
    case = open_case(uows)
    victim, responsible = ids(case)
    _to_consent(uows, case)
    for pid in (victim, responsible):
        services.record_consent(uows, COORDINATOR, case.case_id, participant_id=pid, status="given", method="verbal")
    services.move_stage(uows, Risk(), COORDINATOR, case.case_id, to_stage="risk_and_safety", reason="")
    services.move_stage(uows, Risk(), COORDINATOR, case.case_id, to_stage="preparation", reason="")
    services.allocate_facilitators(uows, Register(), COORDINATOR, case.case_id, facilitator_ids=["f-lead"])
    services.choose_intervention(uows, COORDINATOR, case.case_id, kind="indirect_letters")
    for stage in ("intervention", "outcome_agreement"):
        services.move_stage(uows, Risk(), COORDINATOR, case.case_id, to_stage=stage, reason="")
    with pytest.raises(ValidationFailed):
        services.add_outcome_item(uows, COORDINATOR, case.case_id, kind="apology", description="x",
                                  owner_participant_id=responsible, due_on="not a date")
    case = services.add_outcome_item(uows, COORDINATOR, case.case_id, kind="reparation", description="repair fence",
                                     owner_participant_id=responsible, due_on=TODAY.isoformat())
    item = case.outcome_items[0].item_id
    # Make it due yesterday (as time passing would).
    with db.transaction() as conn:
        conn.execute(update(case_outcome_items).where(case_outcome_items.c.item_id == item)
                     .values(due_on=TODAY - timedelta(days=1)))
    assert services.sweep_due(uows)["outcome_items_overdue"] >= 1
    services.sweep_due(uows)
    overdue = [e for e in outbox(db, case.case_id) if e["type"] == "outcome_item_overdue"]
    assert len(overdue) == 1 and overdue[0]["payload"]["item_id"] == item
    assert services.get_case(uows, COORDINATOR, case.case_id).outcome_items[0].overdue_flagged_at is not None


def test_a_concurrent_change_is_refused_not_lost(db, uows):
    """PostgreSQL also holds a row lock from load to save; the version check guards both."""
    case = open_case(uows)
    with uows() as uow:
        first = uow.cases.get_for_update(case.case_id)
    with db.transaction() as conn:
        conn.execute(text("UPDATE cases SET version = version + 1 WHERE case_id = :c"), {"c": case.case_id})
    from mend_common.errors import ConcurrentChange
    with pytest.raises(ConcurrentChange):
        with uows() as uow:
            uow.cases._seen[case.case_id] = first
            uow.cases.save(first, datetime.now(timezone.utc))


def test_rpc_question_from_another_service_is_scoped_and_audited(db, uows):
    case = open_case(uows)
    service = Principal(kind="service", subject="notifications", roles=frozenset({"service"}),
                        counties=frozenset({"*"}))
    answer = services.participants_for_service(uows, service, case.case_id, COUNTY)
    assert {p["role"] for p in answer["participants"]} == {"victim", "responsible_person"}
    assert "given_name" not in answer["participants"][0]           # only what a service needs
    with pytest.raises(NotFound):
        services.participants_for_service(uows, service, case.case_id, "lancashire")
    with pytest.raises(PermissionDenied):
        services.participants_for_service(uows, COORDINATOR, case.case_id, COUNTY)
    assert ("service:notifications", "case.participants_read") in audits(db, case.case_id)
