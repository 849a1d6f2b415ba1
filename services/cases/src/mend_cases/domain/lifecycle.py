"""Which stage a case may move to, and on what conditions: one table, read by every handler.

A move not in the table is refused outright; a move in the table is refused while any of its
conditions is unmet, naming each missing one (for example "no consent from the victim Ann
Smith"). Closing has its own conditions per reason. Nothing here asks another service: facts
from elsewhere (the risk service's clearance) arrive as arguments, and a fact that could not be
obtained counts as not met.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from .case import (CLOSURE_REASONS, OPEN_STAGES, PRINCIPAL_PARTIES, STAGES, Case, CaseParticipant, CaseRuleBroken,
                   Closure, Eligibility, StageChange)


@dataclass(frozen=True)
class RiskClearance:
    """The risk service's answer for a case: per participant, whether a current, approved
    assessment lets the process go on, and why not. `unavailable` says why there is no answer."""
    cleared: dict[str, bool] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    unavailable: str = ""


@dataclass(frozen=True)
class Facts:
    risk: RiskClearance | None = None


@dataclass(frozen=True)
class Condition:
    name: str
    missing: Callable[[Case, Facts], list[str]]   # what is missing, in plain words; empty when met
    needs_risk: bool = False


def taking_part(case: Case) -> list[CaseParticipant]:
    """The victim(s) and responsible person(s), and anyone else who has agreed to take part."""
    return [p for p in case.participants
            if p.role in PRINCIPAL_PARTIES or (p.consent_status == "given" and not p.process_stopped)]


def _eligibility_accepted(case: Case, _: Facts) -> list[str]:
    if case.eligibility is None or case.eligibility.decision != "accepted":
        return ["eligibility has not been accepted"]
    if not case.eligibility.facts_acknowledged:
        return ["the responsible person has not acknowledged the basic facts of the harm"]
    return []


def _information_offered(case: Case, _: Facts) -> list[str]:
    return [f"no information about restorative justice offered to the {p.role.replace('_', ' ')} {p.display_name}"
            for p in case.participants if p.role in PRINCIPAL_PARTIES and p.information_offered_at is None]


def _principal_consent(case: Case, _: Facts) -> list[str]:
    missing = []
    for role in PRINCIPAL_PARTIES:
        people = case.parties(role)
        if not people:
            missing.append(f"no {role.replace('_', ' ')} on the case")
        for p in people:
            if not p.consent_current:
                state = "withdrawn" if p.process_stopped else p.consent_status.replace("_", " ")
                missing.append(f"no consent from the {role.replace('_', ' ')} {p.display_name} (consent {state})")
    return missing


def _risk_approved(case: Case, facts: Facts) -> list[str]:
    risk = facts.risk
    if risk is None or risk.unavailable:
        why = risk.unavailable if risk else "not asked"
        return [f"no approved risk assessment: the risk service could not confirm one ({why})"]
    return [f"no current approved risk assessment for the {p.role.replace('_', ' ')} {p.display_name}"
            + (f" ({risk.reasons[p.participant_id]})" if risk.reasons.get(p.participant_id) else "")
            for p in taking_part(case) if not risk.cleared.get(p.participant_id, False)]


def _facilitators_allocated(case: Case, _: Facts) -> list[str]:
    return [] if case.facilitators else ["no facilitator allocated"]


def _intervention_chosen(case: Case, _: Facts) -> list[str]:
    return [] if case.intervention_kind else ["the kind of intervention (direct or indirect) has not been chosen"]


def _outcome_recorded(case: Case, _: Facts) -> list[str]:
    if case.outcome_items or case.no_agreement_reason:
        return []
    return ["no outcome agreement recorded (add its items, or record that none was reached)"]


def _at_follow_up(case: Case, _: Facts) -> list[str]:
    return [] if case.stage == "follow_up" else [f"a case is completed from follow-up, not from {case.stage}"]


def _follow_up_recorded(case: Case, _: Facts) -> list[str]:
    return [] if case.follow_up else ["no follow-up recorded"]


def _outcome_items_settled(case: Case, _: Facts) -> list[str]:
    return [f"outcome item '{i.description or i.kind}' is still pending" for i in case.outcome_items
            if i.status == "pending"]


ELIGIBILITY_ACCEPTED = Condition("eligibility_accepted", _eligibility_accepted)
INFORMATION_OFFERED = Condition("information_offered", _information_offered)
PRINCIPAL_CONSENT = Condition("consent_given", _principal_consent)
RISK_APPROVED = Condition("risk_assessment_approved", _risk_approved, needs_risk=True)
FACILITATORS_ALLOCATED = Condition("facilitators_allocated", _facilitators_allocated)
INTERVENTION_CHOSEN = Condition("intervention_kind_chosen", _intervention_chosen)
OUTCOME_RECORDED = Condition("outcome_agreement_recorded", _outcome_recorded)
AT_FOLLOW_UP = Condition("at_follow_up", _at_follow_up)
FOLLOW_UP_RECORDED = Condition("follow_up_recorded", _follow_up_recorded)
OUTCOME_ITEMS_SETTLED = Condition("outcome_items_settled", _outcome_items_settled)

# (from, to) -> conditions. Forward one stage at a time; back one stage where work must be
# redone (consent sought again, risk reassessed, preparation resumed after a postponement).
TRANSITIONS: dict[tuple[str, str], tuple[Condition, ...]] = {
    ("referral_received", "eligibility"): (),
    ("eligibility", "contact_and_information"): (ELIGIBILITY_ACCEPTED,),
    ("contact_and_information", "consent"): (INFORMATION_OFFERED,),
    ("consent", "risk_and_safety"): (PRINCIPAL_CONSENT,),
    ("risk_and_safety", "preparation"): (PRINCIPAL_CONSENT, RISK_APPROVED),
    ("preparation", "intervention"): (PRINCIPAL_CONSENT, FACILITATORS_ALLOCATED, INTERVENTION_CHOSEN, RISK_APPROVED),
    ("intervention", "outcome_agreement"): (PRINCIPAL_CONSENT, FACILITATORS_ALLOCATED),
    ("outcome_agreement", "follow_up"): (PRINCIPAL_CONSENT, OUTCOME_RECORDED),
    ("risk_and_safety", "consent"): (),
    ("preparation", "risk_and_safety"): (),
    ("intervention", "preparation"): (),
}
# Closing is possible from any open stage; completing needs the work done.
CLOSING: dict[str, tuple[Condition, ...]] = {reason: () for reason in CLOSURE_REASONS}
CLOSING["completed"] = (AT_FOLLOW_UP, FOLLOW_UP_RECORDED, OUTCOME_ITEMS_SETTLED)


def needs_risk(case: Case, to_stage: str) -> bool:
    return any(c.needs_risk for c in TRANSITIONS.get((case.stage, to_stage), ()))


def next_stages(stage: str) -> list[str]:
    return [to for (frm, to) in TRANSITIONS if frm == stage]


def missing_for_move(case: Case, to_stage: str, facts: Facts) -> list[tuple[str, str]]:
    """(condition, description) for each unmet condition of moving to to_stage. Raises
    CaseRuleBroken if the table has no such move at all."""
    case.require_open()
    if to_stage == "closed":
        raise CaseRuleBroken("close_with_reason", "a case is closed with a reason (CloseCase), not moved to closed")
    conditions = TRANSITIONS.get((case.stage, to_stage))
    if conditions is None:
        allowed = ", ".join(next_stages(case.stage)) or "none"
        raise CaseRuleBroken("transition_allowed",
                             f"a case at {case.stage} cannot move to {to_stage} (next stages: {allowed})")
    return [(c.name, text) for c in conditions for text in c.missing(case, facts)]


def move(case: Case, to_stage: str, facts: Facts, at: datetime, by: str, reason: str) -> StageChange:
    """Move the case on, or raise StageRefused naming every missing condition."""
    missing = missing_for_move(case, to_stage, facts)
    if missing:
        raise StageRefused(f"cannot move from {case.stage} to {to_stage}", missing)
    return _enter(case, to_stage, at, by, reason)


def _enter(case: Case, stage: str, at: datetime, by: str, reason: str) -> StageChange:
    change = StageChange(stage, at, by, reason)
    case.stage = stage
    case.history.append(change)
    return change


def decide_eligibility(case: Case, accepted: bool, facts_acknowledged: bool, reason: str, at: datetime,
                       by: str) -> list[StageChange]:
    """Accept (the case moves to contact and information) or reject (the case closes as
    unsuitable). A case still at referral received passes through eligibility on the record."""
    case.require_open()
    if case.stage not in ("referral_received", "eligibility"):
        raise CaseRuleBroken("eligibility_undecided", f"eligibility was already decided; the case is at {case.stage}")
    if accepted and not facts_acknowledged:     # refused before anything changes
        raise StageRefused("cannot accept", [("eligibility_accepted", "the responsible person has not acknowledged "
                                              "the basic facts of the harm")])
    changes = []
    if case.stage == "referral_received":
        changes.append(_enter(case, "eligibility", at, by, "eligibility and suitability assessed"))
    case.eligibility = Eligibility("accepted" if accepted else "rejected", facts_acknowledged, reason, by, at)
    if accepted:
        changes.append(move(case, "contact_and_information", Facts(), at, by, reason or "eligibility accepted"))
    else:
        close(case, "unsuitable", reason, at, by, after_rejection=True)
        changes.append(case.history[-1])
    return changes


def close(case: Case, reason: str, note: str, at: datetime, by: str, *, after_rejection: bool = False) -> Closure:
    case.require_open()
    if reason not in CLOSING:
        raise CaseRuleBroken("closure_reason", f"closure reason must be one of: {', '.join(CLOSURE_REASONS)}")
    missing = [(c.name, text) for c in CLOSING[reason] for text in c.missing(case, Facts())]
    if missing:
        raise StageRefused(f"cannot close as {reason}", missing)
    case.closure = Closure(reason, note, by, at, after_rejection)
    _enter(case, "closed", at, by, f"closed: {reason}" + (f" ({note})" if note else ""))
    return case.closure


class StageRefused(CaseRuleBroken):
    def __init__(self, action: str, missing: list[tuple[str, str]]):
        super().__init__(missing[0][0], f"{action}: " + "; ".join(text for _, text in missing))
        self.action = action
        self.missing = missing


assert all(frm in OPEN_STAGES and to in STAGES for frm, to in TRANSITIONS), "the table names only real stages"
