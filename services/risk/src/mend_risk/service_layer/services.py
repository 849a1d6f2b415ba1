"""Use cases of the risk service: assess, approve or reject, expire, and answer the safety gate
and the cases service's clearance question. Every call is scoped to the caller's county and
role, and audited; a refusal is audited without revealing whether the record exists."""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from typing import Callable, Sequence

from prometheus_client import Counter

from mend_common.auth import Principal
from mend_common.envelope import Envelope, new_event
from mend_common.errors import (ConcurrentChange, FailedPrecondition, NotFound, PermissionDenied, Unavailable,
                                Violations)

from ..domain import access
from ..domain.assessment import Assessment, AssessmentRuleBroken, assess
from ..domain.gate import GateDecision, case_clearance as clearance_rule, check_meeting_safety as gate_rule
from ..domain.rules import Factor, RuleSet, current_rules
from ..domain.vocabulary import EVIDENCE_SOURCES, FACTOR_KINDS, MEASURES, MEETING_KINDS, SEVERITIES
from .ports import CaseFacts, CaseFactsSource

log = logging.getLogger(__name__)
SERVICE = "risk"
ASSESSMENTS = Counter("mend_risk_assessments_total", "Risk assessments recorded", ["county", "level", "decision"])
REVIEWS = Counter("mend_risk_reviews_total", "Manager reviews of risk assessments", ["county", "outcome"])
EXPIRED = Counter("mend_risk_assessments_expired_total", "Assessments that stopped being in force", ["cause"])
GATE = Counter("mend_risk_gate_decisions_total", "Safety gate answers", ["meeting_kind", "allowed"])

MAX_FACTORS = 40
MAX_NOTES = 4000
MAX_PARTICIPANTS = 20
# Entering these stages makes the assessments in force lapse: a new one is due there. Moving on
# into intervention, outcome agreement or follow-up keeps the preparation assessment, which is
# the one that clears the meeting.
STAGES_NEEDING_NEW_ASSESSMENT = ("risk_and_safety", "preparation", "closed")


def _now() -> datetime:
    return datetime.now(timezone.utc)


# -- input checks -------------------------------------------------------------------------------
def _factors(v: Violations, raw: Sequence[dict]) -> tuple[Factor, ...]:
    if len(raw) > MAX_FACTORS:
        v.add("factors", f"must hold at most {MAX_FACTORS} factors")
        return ()
    seen: set[str] = set()
    factors = []
    for i, f in enumerate(raw):
        if not isinstance(f, dict):
            v.add(f"factors[{i}]", "must be a factor with kind, severity, source and notes")
            continue
        kind, severity, source = f.get("kind", ""), f.get("severity", ""), f.get("source", "")
        ok = True
        if kind not in FACTOR_KINDS:
            v.add(f"factors[{i}].kind", "must be one of " + ", ".join(FACTOR_KINDS))
            ok = False
        elif kind in seen:
            v.add(f"factors[{i}].kind", f"{kind} is already given: record each factor once, at its highest severity")
            ok = False
        if severity not in SEVERITIES:
            v.add(f"factors[{i}].severity", "must be one of " + ", ".join(SEVERITIES))
            ok = False
        if source not in EVIDENCE_SOURCES:
            v.add(f"factors[{i}].source", "must be one of " + ", ".join(EVIDENCE_SOURCES))
            ok = False
        notes = f.get("notes", "")
        if not isinstance(notes, str):
            v.add(f"factors[{i}].notes", "must be text")
        notes = v.text(f"factors[{i}].notes", notes, required=False, limit=MAX_NOTES)
        if ok:
            seen.add(kind)
            factors.append(Factor(kind=kind, severity=severity, source=source, notes=notes))
    return tuple(factors)


def _participant_ids(v: Violations, raw: Sequence[str], *, required: bool) -> list[str]:
    if len(raw) > MAX_PARTICIPANTS:
        v.add("participant_ids", f"must hold at most {MAX_PARTICIPANTS} participants")
        return []
    if required and not raw:
        v.add("participant_ids", "must name at least one participant")
    ids = [v.uuid(f"participant_ids[{i}]", p) for i, p in enumerate(raw)]
    if len(set(ids)) != len(ids):
        v.add("participant_ids", "must not name a participant twice")
    return ids


# -- finding the case ---------------------------------------------------------------------------
def _staff(principal: Principal) -> None:
    if principal.kind != "staff" or not principal.has_any_role("coordinator", "manager", "auditor", "facilitator"):
        raise PermissionDenied("risk assessments are for coordinators, facilitators, managers and auditors")


def _case_for(cases: CaseFactsSource, principal: Principal, case_id: str) -> CaseFacts | None:
    """The case among the caller's counties (a caller usually covers one)."""
    for county in sorted(principal.counties):
        facts = cases.facts(county, case_id)
        if facts is not None:
            return facts
    return None


def _refuse(uow_factory: Callable, principal: Principal, action: str, resource_type: str, resource_id: str,
            message: str) -> NotFound:
    with uow_factory() as uow:
        uow.audit(principal.label, f"{action}_refused", resource_type, resource_id, None)
    return NotFound(message)


def _readable_case(uow_factory, cases, principal: Principal, case_id: str, action: str) -> CaseFacts:
    facts = _case_for(cases, principal, case_id)
    if facts is None or not access.can_read(principal, facts.county, facts.facilitator_ids):
        raise _refuse(uow_factory, principal, action, "case", case_id, f"case {case_id} not found")
    return facts


def _readable_assessment(uow, cases, principal: Principal, assessment: Assessment | None) -> bool:
    if assessment is None or assessment.county not in principal.counties:
        return False
    if principal.has_any_role("coordinator", "manager", "auditor"):
        return access.can_read(principal, assessment.county, ())
    # A facilitator reads only the cases allocated to them: ask the cases service who they are.
    facts = cases.facts(assessment.county, assessment.case_id)
    return facts is not None and access.can_read(principal, facts.county, facts.facilitator_ids)


def _publish(uow, county: str, event_type: str, payload: dict) -> None:
    uow.publish(new_event(SERVICE, event_type, county, payload))


def _lapse(uow, assessment: Assessment, reason: str, at: datetime, cause: str) -> bool:
    if not assessment.expire(reason, at):
        return False
    uow.assessments.save(assessment)
    _publish(uow, assessment.county, "risk_expired", {
        "assessment_id": assessment.assessment_id, "case_id": assessment.case_id,
        "participant_id": assessment.participant_id, "cause": cause, "expired_at": at.isoformat()})
    EXPIRED.labels(cause).inc()
    return True


# -- assessing ----------------------------------------------------------------------------------
def record_assessment(uow_factory: Callable, cases: CaseFactsSource, principal: Principal, *, case_id: str,
                      participant_id: str, factors: Sequence[dict], valid_days: int,
                      rules: RuleSet | None = None) -> Assessment:
    _staff(principal)
    v = Violations()
    case_id = v.uuid("case_id", case_id)
    participant_id = v.uuid("participant_id", participant_id)
    checked = _factors(v, factors)
    v.raise_if_any()
    facts = _readable_case(uow_factory, cases, principal, case_id, "risk.assess")
    if not access.can_assess(principal, facts.county, facts.facilitator_ids):
        with uow_factory() as uow:
            uow.audit(principal.label, "risk.assess_refused", "case", case_id, facts.county, reason="not an assessor")
        raise PermissionDenied("assessors are coordinators of the county or facilitators allocated to the case")
    person = facts.participants.get(participant_id)
    if person is None:
        v.add("participant_id", "is not a participant of this case")
        v.raise_if_any()
    if facts.stage == "closed":
        raise FailedPrecondition("the case is closed: no new assessment can be recorded")
    rules = rules or current_rules()
    now = _now()
    try:
        assessment = assess(case_id=case_id, county=facts.county, participant_id=participant_id, stage=facts.stage,
                            assessor=principal.subject, factors=checked, rules=rules, now=now,
                            valid_days=valid_days, offence_flags=facts.offence_flags, participant_role=person.role,
                            is_youth=person.is_youth)
    except AssessmentRuleBroken as exc:
        raise FailedPrecondition(str(exc)) from None
    with uow_factory() as uow:
        earlier = [a for a in uow.assessments.for_case(facts.county, case_id, lock=True)
                   if a.participant_id == participant_id and a.status in ("approved", "awaiting_approval")]
        for old in earlier:
            old.supersede(now, assessment.assessment_id)
            uow.assessments.save(old)
        if earlier:
            assessment.supersedes = earlier[-1].assessment_id
        uow.assessments.add(assessment)
        c = assessment.conclusion
        _publish(uow, facts.county, "risk_assessed", {
            "assessment_id": assessment.assessment_id, "case_id": case_id, "participant_id": participant_id,
            "stage": facts.stage, "level": c.level, "decision": c.decision, "measures": list(c.measures),
            "needs_approval": c.needs_approval, "rule_version": c.rule_version, "status": assessment.status})
        if assessment.status == "awaiting_approval":
            _publish(uow, facts.county, "risk_approval_requested", {
                "assessment_id": assessment.assessment_id, "case_id": case_id, "participant_id": participant_id,
                "level": c.level, "assessor": principal.subject})
        uow.audit(principal.label, "risk.assess", "risk_assessment", assessment.assessment_id, facts.county,
                  reason=f"case {case_id}: {c.level}, {c.decision}, {assessment.status}")
    ASSESSMENTS.labels(facts.county, assessment.conclusion.level, assessment.conclusion.decision).inc()
    return assessment


def review_assessment(uow_factory: Callable, cases: CaseFactsSource, principal: Principal, *, assessment_id: str,
                      approve: bool, reason: str = "", expected_version: int = 0) -> Assessment:
    _staff(principal)
    v = Violations()
    assessment_id = v.uuid("assessment_id", assessment_id)
    reason = v.text("reason", reason, required=not approve, limit=MAX_NOTES)
    if expected_version < 0:
        v.add("expected_version", "must not be negative")
    v.raise_if_any()
    action = "risk.approve" if approve else "risk.reject"
    now = _now()
    refused: Exception | None = None
    # One transaction: a refusal commits only its audit record, a review its change and event.
    with uow_factory() as uow:
        assessment = uow.assessments.get_for_update(assessment_id)
        # Only county readers get further than NOT_FOUND (no remote call under the row lock).
        if assessment is None or not access.can_read(principal, assessment.county, ()):
            uow.audit(principal.label, f"{action}_refused", "risk_assessment", assessment_id, None)
            refused = NotFound(f"assessment {assessment_id} not found")
        elif not access.can_approve(principal, assessment.county):
            uow.audit(principal.label, f"{action}_refused", "risk_assessment", assessment_id, assessment.county,
                      reason="not a manager of the county")
            refused = PermissionDenied("approvers are managers of the county")
        elif expected_version and expected_version != assessment.version:
            refused = ConcurrentChange(f"assessment {assessment_id} is at version {assessment.version}, "
                                       f"not {expected_version}; read it again")
        else:
            try:
                if approve:
                    assessment.approve(principal.subject, now)
                else:
                    assessment.reject(principal.subject, now, reason)
            except AssessmentRuleBroken as exc:
                uow.audit(principal.label, f"{action}_refused", "risk_assessment", assessment_id, assessment.county,
                          reason=str(exc))
                refused = FailedPrecondition(str(exc))
            else:
                uow.assessments.save(assessment)
                _publish(uow, assessment.county, "risk_approved" if approve else "risk_rejected", {
                    "assessment_id": assessment_id, "case_id": assessment.case_id,
                    "participant_id": assessment.participant_id,
                    ("approved_by" if approve else "rejected_by"): principal.subject})
                uow.audit(principal.label, action, "risk_assessment", assessment_id, assessment.county,
                          reason=reason or None)
    if refused is not None:
        raise refused
    REVIEWS.labels(assessment.county, "approved" if approve else "rejected").inc()
    return assessment


def record_new_information(uow_factory: Callable, cases: CaseFactsSource, principal: Principal, *, case_id: str,
                           participant_id: str, summary: str) -> list[str]:
    """New information about a case or one participant: what was in force lapses."""
    _staff(principal)
    v = Violations()
    case_id = v.uuid("case_id", case_id)
    if participant_id:
        participant_id = v.uuid("participant_id", participant_id)
    summary = v.text("summary", summary, required=True, limit=MAX_NOTES)
    v.raise_if_any()
    facts = _readable_case(uow_factory, cases, principal, case_id, "risk.new_information")
    if not access.can_expire(principal, facts.county, facts.facilitator_ids):
        raise PermissionDenied("new information is recorded by the case's assessors and the county's managers")
    if participant_id and participant_id not in facts.participants:
        v.add("participant_id", "is not a participant of this case")
        v.raise_if_any()
    now = _now()
    expired = []
    with uow_factory() as uow:
        for a in uow.assessments.for_case(facts.county, case_id, lock=True):
            if participant_id and a.participant_id != participant_id:
                continue
            if _lapse(uow, a, f"new information: {summary}", now, "new_information"):
                expired.append(a.assessment_id)
        uow.audit(principal.label, "risk.new_information", "case", case_id, facts.county,
                  reason=f"{len(expired)} assessments lapsed")
    return expired


# -- reading ------------------------------------------------------------------------------------
def get_assessment(uow_factory: Callable, cases: CaseFactsSource, principal: Principal, assessment_id: str
                   ) -> Assessment:
    _staff(principal)
    v = Violations()
    assessment_id = v.uuid("assessment_id", assessment_id)
    v.raise_if_any()
    with uow_factory() as uow:
        assessment = uow.assessments.get(assessment_id)
        readable = _readable_assessment(uow, cases, principal, assessment)
        uow.audit(principal.label, "risk.read" if readable else "risk.read_refused", "risk_assessment",
                  assessment_id, assessment.county if readable else None)
    if not readable:
        raise NotFound(f"assessment {assessment_id} not found")
    return assessment


def list_assessments(uow_factory: Callable, cases: CaseFactsSource, principal: Principal, case_id: str, *,
                     current_only: bool = False) -> list[Assessment]:
    _staff(principal)
    v = Violations()
    case_id = v.uuid("case_id", case_id)
    v.raise_if_any()
    now = _now()
    found: list[Assessment] = []
    with uow_factory() as uow:
        for county in sorted(principal.counties):
            found += uow.assessments.for_case(county, case_id)
    if found and not principal.has_any_role("coordinator", "manager", "auditor"):
        facts = cases.facts(found[0].county, case_id)
        if facts is None or not access.can_read(principal, facts.county, facts.facilitator_ids):
            found = []
    with uow_factory() as uow:
        uow.audit(principal.label, "risk.list", "case", case_id, found[0].county if found else None)
    if current_only:
        found = [a for a in found if a.is_current(now)]
    return found


# -- the safety gate and case clearance -----------------------------------------------------------
def _gate_inputs(v: Violations, meeting_kind: str, plan_measures: Sequence[str]) -> tuple[str, set[str]]:
    if meeting_kind not in MEETING_KINDS:
        v.add("meeting_kind", "must be one of " + ", ".join(MEETING_KINDS))
    measures = set()
    for i, m in enumerate(plan_measures):
        if m not in MEASURES or m == "indirect_only":
            v.add(f"plan_measures[{i}]", "must be a measure a plan can provide: " +
                  ", ".join(x for x in MEASURES if x != "indirect_only"))
        else:
            measures.add(m)
    return meeting_kind, measures


def _decide(uow, facts: CaseFacts, participant_ids: list[str], meeting_kind: str, measures: set[str]
            ) -> GateDecision:
    strangers = sorted(p for p in participant_ids if p not in facts.participants)
    if strangers:
        return GateDecision(False, tuple(f"{p}: not a participant of this case" for p in strangers))
    by_participant: dict[str, list[Assessment]] = {}
    for a in uow.assessments.for_case(facts.county, facts.case_id):
        by_participant.setdefault(a.participant_id, []).append(a)
    return gate_rule(meeting_kind=meeting_kind, participant_ids=participant_ids, assessments=by_participant,
                     plan_measures=measures, now=_now())


def check_meeting_safety(uow_factory: Callable, cases: CaseFactsSource, principal: Principal, *, case_id: str,
                         participant_ids: Sequence[str], meeting_kind: str, plan_measures: Sequence[str],
                         county: str = "") -> GateDecision:
    """For staff over gRPC, or a Mend service over RPC naming the county. Any doubt is a deny."""
    v = Violations()
    case_id = v.uuid("case_id", case_id)
    ids = _participant_ids(v, list(participant_ids), required=meeting_kind != "supervision")
    meeting_kind, measures = _gate_inputs(v, meeting_kind, plan_measures)
    v.raise_if_any()
    if principal.kind == "service":
        if not county or not principal.covers(county):
            raise PermissionDenied("this service may not ask about that county")
        try:
            facts = cases.facts(county, case_id)
        except Unavailable:
            decision = GateDecision(False, ("the cases service did not answer: deny until it does",))
            facts = None
        else:
            if facts is None:
                decision = GateDecision(False, (f"case {case_id} not found in {county}",))
    else:
        _staff(principal)
        facts = _readable_case(uow_factory, cases, principal, case_id, "risk.gate")
        if not access.can_check_safety(principal, facts.county, facts.facilitator_ids):
            raise PermissionDenied("the safety gate is for coordinators, managers and the case's facilitators")
    with uow_factory() as uow:
        if facts is not None:
            decision = _decide(uow, facts, ids, meeting_kind, measures)
        uow.audit(principal.label, "risk.gate_allow" if decision.allowed else "risk.gate_deny", "case", case_id,
                  facts.county if facts else None, reason="; ".join(decision.reasons)[:1000] or None)
    GATE.labels(meeting_kind, str(decision.allowed).lower()).inc()
    return decision


def case_clearance(uow_factory: Callable, caller: Principal, *, county: str, case_id: str, stage: str,
                   participant_ids: Sequence[str]) -> dict:
    """The cases service's question before a move that needs risk cleared: per participant,
    cleared or not with the reason."""
    if caller.kind != "service":
        raise PermissionDenied("this question is for Mend services")
    if not isinstance(county, str) or not county or not caller.covers(county):
        raise PermissionDenied("this service may not ask about that county")
    v = Violations()
    case_id = v.uuid("case_id", case_id)
    ids = _participant_ids(v, list(participant_ids) if isinstance(participant_ids, (list, tuple)) else [None],
                           required=False)
    v.raise_if_any()
    now = _now()
    with uow_factory() as uow:
        by_participant: dict[str, list[Assessment]] = {}
        for a in uow.assessments.for_case(county, case_id):
            by_participant.setdefault(a.participant_id, []).append(a)
        answer = clearance_rule(participant_ids=ids, assessments=by_participant, now=now)
        uow.audit(caller.label, "risk.clearance", "case", case_id, county,
                  reason=f"to {stage}: " + ", ".join(f"{p}={'cleared' if ok else 'not cleared'}"
                                                     for p, (ok, _) in sorted(answer.items()))[:1000])
    return {"participants": {pid: {"cleared": ok, "reason": why} for pid, (ok, why) in answer.items()}}


# -- lapsing ------------------------------------------------------------------------------------
def on_case_events(uow_factory: Callable, envelopes: list[Envelope], consumer: str) -> int:
    """Cases events that make assessments lapse: the case entering a stage where a new one is
    due (or closing), and a participant withdrawing consent. Redeliveries change nothing."""
    now = _now()
    lapsed = 0
    with uow_factory() as uow:
        claimed = uow.claim_events(consumer, [e.event_id for e in envelopes])
        for envelope in envelopes:
            if envelope.event_id not in claimed:
                continue
            p = envelope.payload
            case_id = str(p.get("case_id", ""))
            # An assessment made at the stage entered is the new one, not a stale one: the
            # stage_changed event may arrive after it was recorded.
            new_stage = None
            if envelope.type == "stage_changed":
                if p.get("to_stage") not in STAGES_NEEDING_NEW_ASSESSMENT:
                    continue
                new_stage = p.get("to_stage")
                who, reason, cause = None, f"the case moved from {p.get('from_stage')} to {p.get('to_stage')}", "stage"
            elif envelope.type == "case_closed":
                who, reason, cause = None, f"the case closed ({p.get('reason')})", "closed"
            elif envelope.type == "consent_withdrawn":
                who, reason, cause = p.get("participant_id"), "consent withdrawn", "consent_withdrawn"
            else:
                continue
            for a in uow.assessments.for_case(envelope.county, case_id, lock=True):
                if (who is None or a.participant_id == who) and (new_stage is None or a.stage != new_stage):
                    lapsed += _lapse(uow, a, reason, now, cause)
    return lapsed


def sweep_expired(uow_factory: Callable, batch: int = 500) -> int:
    """Assessments past their validity lapse (each once, however many workers sweep)."""
    now = _now()
    with uow_factory() as uow:
        count = 0
        for a in uow.assessments.run_out_by(now, batch):
            count += _lapse(uow, a, "its validity ran out: a new assessment is due", now, "time")
            uow.audit("system:risk", "risk.expire", "risk_assessment", a.assessment_id, a.county)
    if count:
        log.info("sweep: %d risk assessments ran out", count)
    return count


def read_rules(uow_factory: Callable, principal: Principal, rules: RuleSet) -> RuleSet:
    """The rules in force, for any member of staff to read (managers own them)."""
    if not access.can_read_rules(principal):
        raise PermissionDenied("the risk rules are for coordinators, facilitators, managers and auditors")
    with uow_factory() as uow:
        uow.audit(principal.label, "risk.rules_read", "risk_rules", rules.version, None)
    return rules
