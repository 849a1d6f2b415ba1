"""The rules of the case domain, plain Python: the stage transition table and closing
(lifecycle.py), consent (Case.record_consent), who may facilitate (allocation.py), the Victims'
Code clocks (clocks.py) and who may read or change a case (access.py)."""
from __future__ import annotations

import copy
import dataclasses
import uuid
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mend_common.auth import Principal
from case_examples import AGENCY, OPENED, RECEIVED, open_from, referral
from mend_cases.domain import lifecycle
from mend_cases.domain.access import ACTIONS, can_act, can_read
from mend_cases.domain.allocation import FacilitatorRecord, allocation_problems
from mend_cases.domain.case import (CLOSURE_REASONS, CONSENT_METHODS, CONSENT_MOVES, CONSENT_STATUSES,
                                    OPEN_STAGES, STAGES, VULNERABILITIES, Allocation, Case, CaseRuleBroken,
                                    Eligibility, FollowUp, OutcomeItem, StageChange, new_participant,
                                    seriousness_of)
from mend_cases.domain.clocks import clock_start, is_overdue, local_day, start_clocks, was_met_late
from mend_cases.domain.lifecycle import (CLOSING, TRANSITIONS, Facts, RiskClearance, StageRefused, close,
                                         decide_eligibility, missing_for_move, move, next_stages)
from mend_cases.domain.working_days import is_working_day, working_days_between

PROPERTY = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
AT = datetime(2026, 6, 10, 10, 0, tzinfo=timezone.utc)
BY = "staff:c1"
LONDON = ZoneInfo("Europe/London")


# -- helpers -----------------------------------------------------------------------------------
def fresh(**changes) -> Case:
    """A new case at referral_received: victim Ann Smith (intimidated), responsible person Bob (17)."""
    return open_from(referral(**changes))


def victim(case: Case):
    return case.parties("victim")[0]


def responsible(case: Case):
    return case.parties("responsible_person")[0]


def principals(case: Case):
    return [victim(case), responsible(case)]


def supporter(case: Case, consent: str = "not_requested"):
    """Adds Sue Park, a supporter, with the given consent status."""
    person = new_participant("supporter", "Sue", "Park", None, 50, [], True, {}, RECEIVED.date())
    case.add_participant(person)
    person.consent_status = consent
    person.process_stopped = consent == "withdrawn"
    return person


def at_stage(case: Case, stage: str) -> Case:
    """Puts the case at `stage` directly (the history records it) to test the rules from there."""
    if case.stage != stage:
        case.stage = stage
        case.history.append(StageChange(stage, AT, BY, "placed for the test"))
    return case


def all_cleared(case: Case) -> Facts:
    return Facts(risk=RiskClearance(cleared={p.participant_id: True for p in case.participants}))


def ready(stage: str = "referral_received") -> Case:
    """A case at `stage` with every condition of every move and of completing met."""
    case = fresh()
    case.eligibility = Eligibility("accepted", True, "suitable", BY, AT)
    for p in principals(case):
        p.information_offered_at = AT
        case.record_consent(p.participant_id, "given", "written", AT, BY)
    case.facilitators = [Allocation("f1", True, AT, BY)]
    case.intervention_kind = "direct_conference"
    case.outcome_items = [OutcomeItem("i1", "apology", "Letter of apology", responsible(case).participant_id,
                                      date(2026, 7, 1), "completed", BY, AT)]
    case.follow_up = FollowUp("call made", [], "satisfied", BY, AT)
    return at_stage(case, stage)


def stages_of(case: Case) -> list[str]:
    return [h.stage for h in case.history]


def staff(*roles, counties=("cumbria",), subject="u1") -> Principal:
    return Principal(kind="staff", subject=subject, roles=frozenset(roles), counties=frozenset(counties))


# =============================================================================================
# 1. The transition table
# =============================================================================================
# The moves the lifecycle allows and the conditions each must at least check.
EXPECTED_MOVES = {
    ("referral_received", "eligibility"): (),
    ("eligibility", "contact_and_information"): ("eligibility_accepted",),
    ("contact_and_information", "consent"): ("information_offered",),
    ("consent", "risk_and_safety"): ("consent_given",),
    ("risk_and_safety", "preparation"): ("consent_given", "risk_assessment_approved"),
    ("preparation", "intervention"): ("consent_given", "facilitators_allocated", "intervention_kind_chosen",
                                      "risk_assessment_approved"),
    ("intervention", "outcome_agreement"): ("facilitators_allocated",),
    ("outcome_agreement", "follow_up"): ("outcome_agreement_recorded",),
    # Back one stage to redo work: no conditions.
    ("risk_and_safety", "consent"): (),
    ("preparation", "risk_and_safety"): (),
    ("intervention", "preparation"): (),
}
BACK_MOVES = [(frm, to) for frm, to in EXPECTED_MOVES if STAGES.index(to) < STAGES.index(frm)]
NOT_IN_TABLE = [(frm, to) for frm in OPEN_STAGES for to in OPEN_STAGES if (frm, to) not in EXPECTED_MOVES]


def test_the_table_holds_exactly_the_expected_moves_with_at_least_their_conditions():
    assert set(TRANSITIONS) == set(EXPECTED_MOVES)
    for pair, names in EXPECTED_MOVES.items():
        actual = [c.name for c in TRANSITIONS[pair]]
        assert set(names) <= set(actual), pair
        assert len(actual) == len(set(actual)), f"{pair} lists a condition twice"
    for pair in BACK_MOVES:
        assert TRANSITIONS[pair] == (), f"going back {pair} needs no condition"


@pytest.mark.parametrize("stage, expected", [
    ("referral_received", {"eligibility"}),
    ("eligibility", {"contact_and_information"}),
    ("contact_and_information", {"consent"}),
    ("consent", {"risk_and_safety"}),
    ("risk_and_safety", {"preparation", "consent"}),
    ("preparation", {"intervention", "risk_and_safety"}),
    ("intervention", {"outcome_agreement", "preparation"}),
    ("outcome_agreement", {"follow_up"}),
    ("follow_up", set()),
    ("closed", set()),
])
def test_next_stages(stage, expected):
    found = next_stages(stage)
    assert set(found) == expected and len(found) == len(expected)


@pytest.mark.parametrize("frm, to", [(f, t) for f in OPEN_STAGES for t in OPEN_STAGES])
def test_needs_risk_only_for_the_moves_into_preparation_and_intervention(frm, to):
    assert lifecycle.needs_risk(at_stage(fresh(), frm), to) is \
        ((frm, to) in {("risk_and_safety", "preparation"), ("preparation", "intervention")})


@pytest.mark.parametrize("frm, to", NOT_IN_TABLE)
def test_a_move_not_in_the_table_is_refused_outright(frm, to):
    case = ready(frm)          # every condition met: only the table refuses
    before = copy.deepcopy(case)
    facts = all_cleared(case)
    with pytest.raises(CaseRuleBroken) as info:
        missing_for_move(case, to, facts)
    assert type(info.value) is CaseRuleBroken and info.value.condition == "transition_allowed"
    assert frm in info.value.description and to in info.value.description
    for allowed in next_stages(frm):
        assert allowed in info.value.description.split("next stages:")[1]
    with pytest.raises(CaseRuleBroken) as info:
        move(case, to, facts, AT, BY, "try")
    assert type(info.value) is CaseRuleBroken and info.value.condition == "transition_allowed"
    assert case == before


@pytest.mark.parametrize("frm", OPEN_STAGES)
def test_moving_to_closed_is_refused_close_is_the_way(frm):
    case = ready(frm)
    before = copy.deepcopy(case)
    for attempt in (lambda: missing_for_move(case, "closed", all_cleared(case)),
                    lambda: move(case, "closed", all_cleared(case), AT, BY, "done")):
        with pytest.raises(CaseRuleBroken) as info:
            attempt()
        assert info.value.condition == "close_with_reason" and "reason" in info.value.description
    assert case == before and case.closure is None


@pytest.mark.parametrize("pair", list(EXPECTED_MOVES))
def test_every_move_in_the_table_goes_when_its_conditions_are_met(pair):
    frm, to = pair
    case = ready(frm)
    facts = all_cleared(case)
    assert missing_for_move(case, to, facts) == []
    history = list(case.history)
    change = move(case, to, facts, AT, BY, "moving on")
    assert (change.stage, change.at, change.by, change.reason) == (to, AT, BY, "moving on")
    assert case.stage == to and case.history == history + [change]


def _no_eligibility(case):
    case.eligibility = None


def _no_information(case):
    victim(case).information_offered_at = None


def _no_consent(case):
    victim(case).consent_status = "not_requested"


def _no_facilitators(case):
    case.facilitators = []


def _no_intervention_kind(case):
    case.intervention_kind = ""


def _no_outcome(case):
    case.outcome_items = []
    case.no_agreement_reason = ""


# condition -> (break only that condition, facts to give or None for all cleared, what is named)
BREAKERS = {
    "eligibility_accepted": (_no_eligibility, None, "eligibility has not been accepted"),
    "information_offered": (_no_information, None,
                            "no information about restorative justice offered to the victim Ann Smith"),
    "consent_given": (_no_consent, None, "no consent from the victim Ann Smith (consent not requested)"),
    "risk_assessment_approved": (lambda case: None, Facts(),
                                 "no approved risk assessment: the risk service could not confirm one (not asked)"),
    "facilitators_allocated": (_no_facilitators, None, "no facilitator allocated"),
    "intervention_kind_chosen": (_no_intervention_kind, None,
                                 "the kind of intervention (direct or indirect) has not been chosen"),
    "outcome_agreement_recorded": (_no_outcome, None,
                                   "no outcome agreement recorded (add its items, or record that none was reached)"),
}
EACH_CONDITION = [(frm, to, c.name) for (frm, to), conditions in TRANSITIONS.items() for c in conditions]


def test_every_condition_in_the_table_has_a_breaker_here():
    assert {name for _, _, name in EACH_CONDITION} <= set(BREAKERS)
    assert len(EACH_CONDITION) >= sum(len(v) for v in EXPECTED_MOVES.values())


@pytest.mark.parametrize("frm, to, condition", EACH_CONDITION)
def test_each_unmet_condition_is_named(frm, to, condition):
    case = ready(frm)
    breaker, facts, text = BREAKERS[condition]
    breaker(case)
    facts = facts if facts is not None else all_cleared(case)
    before = copy.deepcopy(case)
    assert missing_for_move(case, to, facts) == [(condition, text)]
    with pytest.raises(StageRefused) as info:
        move(case, to, facts, AT, BY, "try")
    refused = info.value
    assert refused.missing == [(condition, text)]
    assert refused.condition == condition
    assert refused.action == f"cannot move from {frm} to {to}"
    assert text in refused.description
    assert case == before


def test_consent_to_risk_and_safety_names_each_person_without_consent():
    case = at_stage(fresh(), "consent")
    with pytest.raises(StageRefused) as info:
        move(case, "risk_and_safety", Facts(), AT, BY, "")
    assert info.value.missing == [
        ("consent_given", "no consent from the victim Ann Smith (consent not requested)"),
        ("consent_given", "no consent from the responsible person Bob (consent not requested)"),
    ]
    assert "Ann Smith" in str(info.value) and "Bob" in str(info.value)


@pytest.mark.parametrize("steps, state", [
    ([("requested", "")], "requested"),
    ([("declined", "")], "declined"),
    ([("given", "verbal"), ("withdrawn", "")], "withdrawn"),
    ([("given", "verbal"), ("withdrawn", ""), ("requested", "")], "withdrawn"),   # still stopped
    ([("given", "verbal"), ("expired", "")], "expired"),
])
def test_the_missing_consent_says_what_state_it_is_in(steps, state):
    case = ready("consent")
    victim(case).consent_status = "not_requested"
    for status, method in steps:
        case.record_consent(victim(case).participant_id, status, method, AT, BY)
    assert missing_for_move(case, "risk_and_safety", all_cleared(case)) == [
        ("consent_given", f"no consent from the victim Ann Smith (consent {state})")]


def test_a_case_without_a_victim_cannot_pass_consent():
    data = referral()
    data["participants"] = data["participants"][1:]
    case = at_stage(open_from(data), "consent")
    case.record_consent(responsible(case).participant_id, "given", "written", AT, BY)
    assert missing_for_move(case, "risk_and_safety", Facts()) == [("consent_given", "no victim on the case")]


def test_supporter_consent_is_not_needed_to_pass_consent():
    case = ready("consent")
    supporter(case, "declined")
    assert missing_for_move(case, "risk_and_safety", Facts()) == []


# -- risk_and_safety -> preparation -------------------------------------------------------------
NO_RISK = "no approved risk assessment: the risk service could not confirm one"


def test_preparation_is_refused_when_the_risk_service_was_not_asked():
    case = ready("risk_and_safety")
    with pytest.raises(StageRefused) as info:
        move(case, "preparation", Facts(risk=None), AT, BY, "")
    assert info.value.missing == [("risk_assessment_approved", f"{NO_RISK} (not asked)")]
    assert case.stage == "risk_and_safety"


def test_preparation_is_refused_when_the_risk_service_could_not_answer_even_with_clearances():
    case = ready("risk_and_safety")
    everyone = {p.participant_id: True for p in case.participants}
    risk = RiskClearance(cleared=everyone, unavailable="risk service timed out")
    with pytest.raises(StageRefused) as info:
        move(case, "preparation", Facts(risk=risk), AT, BY, "")
    assert info.value.missing == [("risk_assessment_approved", f"{NO_RISK} (risk service timed out)")]


def test_preparation_names_each_participant_not_cleared_with_the_reason():
    case = ready("risk_and_safety")
    ann, bob = principals(case)
    risk = RiskClearance(cleared={ann.participant_id: False}, reasons={ann.participant_id: "assessment expired"})
    with pytest.raises(StageRefused) as info:
        move(case, "preparation", Facts(risk=risk), AT, BY, "")
    assert info.value.missing == [
        ("risk_assessment_approved", "no current approved risk assessment for the victim Ann Smith "
                                     "(assessment expired)"),
        ("risk_assessment_approved", "no current approved risk assessment for the responsible person Bob"),
    ]


def test_preparation_is_allowed_when_everyone_taking_part_is_cleared():
    case = ready("risk_and_safety")
    sue = supporter(case, "given")
    ann, bob = principals(case)
    cleared = {ann.participant_id: True, bob.participant_id: True}
    assert missing_for_move(case, "preparation", Facts(RiskClearance(cleared=cleared))) == [
        ("risk_assessment_approved", "no current approved risk assessment for the supporter Sue Park")]
    change = move(case, "preparation", Facts(RiskClearance(cleared={**cleared, sue.participant_id: True})),
                  AT, BY, "risk assessed")
    assert change.stage == case.stage == "preparation"


@pytest.mark.parametrize("consent", ["not_requested", "requested", "declined", "withdrawn", "expired"])
def test_a_supporter_not_taking_part_needs_no_risk_clearance(consent):
    case = ready("risk_and_safety")
    supporter(case, consent)
    cleared = {p.participant_id: True for p in principals(case)}
    assert missing_for_move(case, "preparation", Facts(RiskClearance(cleared=cleared))) == []


def test_preparation_is_refused_when_a_principal_withdrew_even_if_cleared():
    case = ready("risk_and_safety")
    case.record_consent(responsible(case).participant_id, "withdrawn", "", AT, BY)
    assert missing_for_move(case, "preparation", all_cleared(case)) == [
        ("consent_given", "no consent from the responsible person Bob (consent withdrawn)")]


# -- preparation -> intervention ---------------------------------------------------------------
def test_intervention_needs_consent_facilitators_kind_and_risk_each_named():
    case = at_stage(fresh(), "preparation")
    with pytest.raises(StageRefused) as info:
        move(case, "intervention", Facts(), AT, BY, "")
    missing = info.value.missing
    assert [name for name, _ in missing] == ["consent_given", "consent_given", "facilitators_allocated",
                                             "intervention_kind_chosen", "risk_assessment_approved"]
    assert missing[0][1] == "no consent from the victim Ann Smith (consent not requested)"
    assert missing[1][1] == "no consent from the responsible person Bob (consent not requested)"
    assert info.value.condition == "consent_given"
    for _, text in missing:
        assert text in info.value.description


def test_intervention_goes_once_everything_is_in_place():
    case = at_stage(fresh(), "preparation")
    for p in principals(case):
        case.record_consent(p.participant_id, "given", "verbal", AT, BY)
    case.allocate(["f1", "f2"], AT, BY)
    case.choose_intervention("indirect_shuttle")
    move(case, "intervention", all_cleared(case), AT, BY, "prepared")
    assert case.stage == "intervention"
    assert stages_of(case)[-2:] == ["preparation", "intervention"]


# -- decide_eligibility -----------------------------------------------------------------------
def test_accepting_without_the_facts_acknowledged_is_refused():
    case = fresh()
    with pytest.raises(StageRefused) as info:
        decide_eligibility(case, True, False, "", AT, BY)
    assert info.value.missing == [("eligibility_accepted",
                                   "the responsible person has not acknowledged the basic facts of the harm")]
    assert case.stage != "contact_and_information" and not case.is_closed


def test_a_refused_acceptance_leaves_the_case_unchanged():
    case = fresh()
    before = copy.deepcopy(case)
    with pytest.raises(StageRefused):
        decide_eligibility(case, True, False, "", AT, BY)
    assert case == before


def test_accepting_from_referral_received_records_eligibility_then_contact():
    case = fresh()
    changes = decide_eligibility(case, True, True, "", AT, BY)
    assert [c.stage for c in changes] == ["eligibility", "contact_and_information"]
    assert stages_of(case) == ["referral_received", "eligibility", "contact_and_information"]
    assert case.history[1:] == changes
    assert changes[1].reason == "eligibility accepted" and all(c.by == BY and c.at == AT for c in changes)
    e = case.eligibility
    assert (e.decision, e.facts_acknowledged, e.decided_by, e.decided_at) == ("accepted", True, BY, AT)
    assert case.stage == "contact_and_information" and case.closure is None


def test_accepting_at_eligibility_records_one_move():
    case = at_stage(fresh(), "eligibility")
    changes = decide_eligibility(case, True, True, "meets the criteria", AT, BY)
    assert [(c.stage, c.reason) for c in changes] == [("contact_and_information", "meets the criteria")]
    assert stages_of(case) == ["referral_received", "eligibility", "contact_and_information"]


@pytest.mark.parametrize("start", ["referral_received", "eligibility"])
def test_rejecting_closes_the_case_as_unsuitable_after_rejection(start):
    case = at_stage(fresh(), start)
    changes = decide_eligibility(case, False, True, "offence too recent", AT, BY)
    assert case.stage == "closed" and case.is_closed
    assert stages_of(case) == ["referral_received", "eligibility", "closed"]
    assert changes[-1] is case.history[-1] and changes[-1].stage == "closed"
    assert len(changes) == (2 if start == "referral_received" else 1)
    c = case.closure
    assert (c.reason, c.note, c.closed_by, c.closed_at, c.after_rejection) == \
        ("unsuitable", "offence too recent", BY, AT, True)
    assert case.eligibility.decision == "rejected"


@pytest.mark.parametrize("first, condition", [(True, "eligibility_undecided"), (False, "case_open")])
@pytest.mark.parametrize("second", [True, False])
def test_deciding_twice_is_refused(first, condition, second):
    case = fresh()
    decide_eligibility(case, first, True, "first", AT, BY)
    before = copy.deepcopy(case)
    with pytest.raises(CaseRuleBroken) as info:
        decide_eligibility(case, second, True, "second", AT, BY)
    assert info.value.condition == condition
    assert case == before


@pytest.mark.parametrize("stage", OPEN_STAGES[2:])
def test_eligibility_cannot_be_decided_past_the_eligibility_stage(stage):
    case = at_stage(fresh(), stage)
    with pytest.raises(CaseRuleBroken) as info:
        decide_eligibility(case, True, True, "", AT, BY)
    assert info.value.condition == "eligibility_undecided" and stage in info.value.description


# -- closing ----------------------------------------------------------------------------------
def test_closing_table():
    assert set(CLOSING) == set(CLOSURE_REASONS)
    assert [c.name for c in CLOSING["completed"]] == ["at_follow_up", "follow_up_recorded", "outcome_items_settled"]
    assert all(CLOSING[r] == () for r in CLOSURE_REASONS if r != "completed")


def test_completing_from_follow_up_with_the_work_done():
    case = ready("follow_up")
    closure = close(case, "completed", "", AT, BY)
    assert case.stage == "closed" and case.closure is closure
    assert (closure.reason, closure.closed_by, closure.closed_at, closure.after_rejection) == \
        ("completed", BY, AT, False)
    assert case.history[-1].stage == "closed" and case.history[-1].reason == "closed: completed"


@pytest.mark.parametrize("stage", [s for s in OPEN_STAGES if s != "follow_up"])
def test_completing_is_refused_before_follow_up(stage):
    case = ready(stage)
    before = copy.deepcopy(case)
    with pytest.raises(StageRefused) as info:
        close(case, "completed", "", AT, BY)
    assert info.value.missing == [("at_follow_up", f"a case is completed from follow-up, not from {stage}")]
    assert info.value.action == "cannot close as completed"
    assert case == before


def test_completing_needs_the_follow_up_recorded():
    case = ready("follow_up")
    case.follow_up = None
    with pytest.raises(StageRefused) as info:
        close(case, "completed", "", AT, BY)
    assert info.value.missing == [("follow_up_recorded", "no follow-up recorded")]
    assert not case.is_closed


@pytest.mark.parametrize("description, named", [("Letter of apology", "Letter of apology"), ("", "reparation")])
def test_completing_needs_no_pending_outcome_item(description, named):
    case = ready("follow_up")
    case.outcome_items.append(OutcomeItem("i2", "reparation", description, responsible(case).participant_id,
                                          date(2026, 8, 1), "pending", BY, AT))
    with pytest.raises(StageRefused) as info:
        close(case, "completed", "", AT, BY)
    assert info.value.missing == [("outcome_items_settled", f"outcome item '{named}' is still pending")]
    case.update_outcome_item("i2", "cancelled", AT)
    close(case, "completed", "", AT, BY)
    assert case.closure.reason == "completed"


@pytest.mark.parametrize("reason", [r for r in CLOSURE_REASONS if r != "completed"])
@pytest.mark.parametrize("stage", OPEN_STAGES)
def test_other_reasons_close_from_any_open_stage(reason, stage):
    case = at_stage(fresh(), stage)          # nothing done at all
    closure = close(case, reason, "victim moved away", AT, BY)
    assert case.stage == "closed" and (closure.reason, closure.note, closure.after_rejection) == \
        (reason, "victim moved away", False)
    assert case.history[-1].reason == f"closed: {reason} (victim moved away)"


def test_an_unknown_closure_reason_is_refused():
    case = fresh()
    with pytest.raises(CaseRuleBroken) as info:
        close(case, "bored", "", AT, BY)
    assert info.value.condition == "closure_reason" and not case.is_closed


def _closed_case() -> Case:
    case = ready("follow_up")
    case.outcome_items.append(OutcomeItem("i2", "reparation", "", responsible(case).participant_id,
                                          date(2026, 8, 1), "completed", BY, AT))
    close(case, "completed", "", AT, BY)
    return case


CHANGES_TO_A_CLOSED_CASE = {
    "move_back": lambda c: move(c, "outcome_agreement", all_cleared(c), AT, BY, ""),
    "move_closed": lambda c: move(c, "closed", all_cleared(c), AT, BY, ""),
    "missing_for_move": lambda c: missing_for_move(c, "follow_up", Facts()),
    "close_again": lambda c: close(c, "withdrawn", "", AT, BY),
    "decide_eligibility": lambda c: decide_eligibility(c, True, True, "", AT, BY),
    "record_consent": lambda c: c.record_consent(victim(c).participant_id, "withdrawn", "", AT, BY),
    "add_participant": lambda c: c.add_participant(
        new_participant("supporter", "Sue", "Park", None, 50, [], True, {}, RECEIVED.date())),
    "record_information_offered": lambda c: c.record_information_offered(victim(c).participant_id, AT),
    "record_support_referral": lambda c: c.record_support_referral(victim(c).participant_id, AT),
    "choose_intervention": lambda c: c.choose_intervention("indirect_letters"),
    "allocate": lambda c: c.allocate(["f9"], AT, BY),
    "add_outcome_item": lambda c: c.add_outcome_item("apology", "x", responsible(c).participant_id,
                                                     date(2026, 9, 1), AT, BY),
    "update_outcome_item": lambda c: c.update_outcome_item("i2", "completed", AT),
    "record_no_agreement": lambda c: c.record_no_agreement("none"),
    "record_follow_up": lambda c: c.record_follow_up(FollowUp("again", [], "neither", BY, AT)),
}


@pytest.mark.parametrize("change", list(CHANGES_TO_A_CLOSED_CASE))
def test_a_closed_case_refuses_every_change(change):
    case = _closed_case()
    before = copy.deepcopy(case)
    with pytest.raises(CaseRuleBroken) as info:
        CHANGES_TO_A_CLOSED_CASE[change](case)
    assert info.value.condition == "case_open"
    assert case == before


def test_a_closed_case_still_takes_a_retention_hold():
    case = _closed_case()
    case.set_retention_hold(True)
    assert case.retention_hold and case.is_closed
    case.set_retention_hold(False)
    assert not case.retention_hold and case.is_closed


# -- withdrawal stops the process ---------------------------------------------------------------
FORWARD_PAST_CONSENT = [(frm, to) for frm, to in EXPECTED_MOVES
                        if STAGES.index(to) > STAGES.index(frm) >= STAGES.index("consent")]
# These need the principal parties' consent; so do the two after intervention (tested below).
FORWARD_NEEDING_CONSENT = [("consent", "risk_and_safety"), ("risk_and_safety", "preparation"),
                           ("preparation", "intervention")]


def test_forward_moves_past_consent_are_the_five_expected():
    assert sorted(FORWARD_PAST_CONSENT) == sorted(FORWARD_NEEDING_CONSENT + [
        ("intervention", "outcome_agreement"), ("outcome_agreement", "follow_up")])


@pytest.mark.parametrize("frm, to", [("intervention", "outcome_agreement"), ("outcome_agreement", "follow_up")])
@pytest.mark.parametrize("who", ["victim", "responsible_person"])
def test_a_withdrawal_stops_the_moves_after_intervention(frm, to, who):
    case = ready(frm)
    person = case.parties(who)[0]
    case.record_consent(person.participant_id, "withdrawn", "", AT, BY)
    with pytest.raises(StageRefused) as info:
        move(case, to, all_cleared(case), AT, BY, "")
    assert info.value.condition == "consent_given"


# Random case states from consent onwards.
case_states = st.fixed_dictionaries({
    "stage": st.sampled_from(["consent", "risk_and_safety", "preparation", "intervention", "outcome_agreement"]),
    "consents": st.lists(st.sampled_from(CONSENT_STATUSES), min_size=2, max_size=2),
    "stopped": st.lists(st.booleans(), min_size=2, max_size=2),
    "informed": st.lists(st.booleans(), min_size=2, max_size=2),
    "eligible": st.booleans(),
    "facilitators": st.booleans(),
    "kind": st.booleans(),
    "outcome": st.booleans(),
    "supporter": st.sampled_from([None, *CONSENT_STATUSES]),
    "risk": st.sampled_from(["none", "unavailable", "all", "principals", "victim_only", "nobody"]),
})


def build(state) -> tuple[Case, Facts]:
    case = fresh()
    case.eligibility = Eligibility("accepted", True, "", BY, AT) if state["eligible"] else None
    for p, status, stopped, informed in zip(principals(case), state["consents"], state["stopped"],
                                            state["informed"]):
        p.consent_status = status
        p.process_stopped = status == "withdrawn" or (stopped and status in ("requested", "expired", "declined"))
        p.information_offered_at = AT if informed else None
    if state["supporter"]:
        supporter(case, state["supporter"])
    if state["facilitators"]:
        case.facilitators = [Allocation("f1", True, AT, BY)]
    case.intervention_kind = "direct_conference" if state["kind"] else ""
    if state["outcome"]:
        case.no_agreement_reason = "none reached"
    at_stage(case, state["stage"])
    ids = {"all": [p.participant_id for p in case.participants],
           "principals": [p.participant_id for p in principals(case)],
           "victim_only": [victim(case).participant_id], "nobody": []}
    risk = {"none": None, "unavailable": RiskClearance(unavailable="down")}.get(state["risk"])
    if state["risk"] in ids:
        risk = RiskClearance(cleared={pid: True for pid in ids[state["risk"]]})
    return case, Facts(risk=risk)


@PROPERTY
@given(case_states, st.sampled_from([0, 1]), st.sampled_from(["withdrawn", "expired"]))
def test_removing_a_principals_consent_never_turns_a_refused_move_into_an_allowed_one(state, who, removal):
    case, facts = build(state)
    person = principals(case)[who]
    person.consent_status, person.process_stopped = "given", False
    moves = next_stages(case.stage)
    before = {to: missing_for_move(case, to, facts) for to in moves}
    case.record_consent(person.participant_id, removal, "", AT, BY)
    assert not person.consent_current
    for to in moves:
        after = missing_for_move(case, to, facts)
        assert set(before[to]) <= set(after), to
        if before[to]:
            assert after, f"removing consent allowed {case.stage} -> {to}"
        if any(c.name == "consent_given" for c in TRANSITIONS[(case.stage, to)]):
            assert after and ("consent_given", f"no consent from the {person.role.replace('_', ' ')} "
                                               f"{person.display_name} (consent {removal})") in after


@PROPERTY
@given(case_states, st.sampled_from([0, 1]), st.booleans())
def test_a_withdrawal_refuses_every_forward_move_that_needs_consent(state, who, asked_again):
    case, _ = build(state)
    person = principals(case)[who]
    facts = all_cleared(case)
    person.consent_status = "given"
    person.process_stopped = False
    case.record_consent(person.participant_id, "withdrawn", "", AT, BY)
    if asked_again:
        case.record_consent(person.participant_id, "requested", "", AT, BY)
    for frm, to in FORWARD_NEEDING_CONSENT:
        at_stage(case, frm)
        before = copy.deepcopy(case)
        with pytest.raises(StageRefused) as info:
            move(case, to, facts, AT, BY, "")
        assert ("consent_given", f"no consent from the {person.role.replace('_', ' ')} {person.display_name} "
                                 f"(consent withdrawn)") in info.value.missing
        assert case == before


@PROPERTY
@given(case_states, st.sampled_from(STAGES))
def test_a_refused_move_leaves_the_case_unchanged(state, to):
    case, facts = build(state)
    before = copy.deepcopy(case)
    try:
        change = move(case, to, facts, AT, BY, "try")
    except CaseRuleBroken:
        assert case == before
    else:
        assert (before.stage, to) in TRANSITIONS
        assert case.history == before.history + [change] and case.stage == to


# Random sequences of attempted changes from a fresh case, weighted towards getting on so that
# the later stages and closing as completed are reached too.
_ACTION_ARGS = {
    "advance": st.tuples(st.sampled_from(["all", "all", "all", "none", "victim"])),
    "move": st.tuples(st.sampled_from(STAGES), st.sampled_from(["none", "unavailable", "all", "victim"])),
    "close": st.tuples(st.sampled_from([*CLOSURE_REASONS, "completed", "completed", "bogus"])),
    "decide": st.tuples(st.sampled_from([True, True, True, False]), st.sampled_from([True, True, False])),
    "consent": st.tuples(st.sampled_from([0, 1]), st.sampled_from(CONSENT_STATUSES),
                         st.sampled_from([*CONSENT_METHODS, ""])),
    "consent_all": st.just(()),
    "inform": st.tuples(st.sampled_from([0, 1])),
    "inform_all": st.just(()),
    "allocate": st.just(()),
    "choose": st.just(()),
    "item": st.just(()),
    "settle": st.just(()),
    "no_agreement": st.just(()),
    "follow_up": st.just(()),
    "hold": st.tuples(st.booleans()),
    "prepare": st.just(()),
}
_ACTION_WEIGHTS = {"advance": 8, "prepare": 6, "decide": 2, "consent_all": 3, "inform_all": 2, "settle": 2, "follow_up": 2}
actions = st.sampled_from([kind for kind in _ACTION_ARGS for _ in range(_ACTION_WEIGHTS.get(kind, 1))]).flatmap(
    lambda kind: _ACTION_ARGS[kind].map(lambda args: (kind, *args)))


def _facts(case: Case, kind: str) -> Facts:
    if kind == "all":
        return all_cleared(case)
    if kind == "victim":
        return Facts(RiskClearance(cleared={victim(case).participant_id: True}))
    return Facts(RiskClearance(unavailable="down")) if kind == "unavailable" else Facts()


def _apply(case: Case, action: tuple) -> None:
    kind = action[0]
    if kind == "move":
        move(case, action[1], _facts(case, action[2]), AT, BY, "random")
    elif kind == "advance":
        onward = [to for to in next_stages(case.stage) if STAGES.index(to) > STAGES.index(case.stage)]
        move(case, onward[0] if onward else "closed", _facts(case, action[1]), AT, BY, "advance")
    elif kind == "close":
        close(case, action[1], "", AT, BY)
    elif kind == "decide":
        decide_eligibility(case, action[1], action[2], "decided", AT, BY)
    elif kind == "consent":
        case.record_consent(principals(case)[action[1]].participant_id, action[2], action[3], AT, BY)
    elif kind == "consent_all":
        for p in principals(case):
            if not p.consent_current:
                case.record_consent(p.participant_id, "given", "verbal", AT, BY)
    elif kind == "inform":
        case.record_information_offered(principals(case)[action[1]].participant_id, AT)
    elif kind == "inform_all":
        for p in principals(case):
            case.record_information_offered(p.participant_id, AT)
    elif kind == "allocate":
        case.allocate(["f1"], AT, BY)
    elif kind == "choose":
        case.choose_intervention("direct_conference")
    elif kind == "item":
        case.add_outcome_item("apology", "Letter", responsible(case).participant_id, date(2026, 9, 1), AT, BY)
    elif kind == "settle":
        pending = [i for i in case.outcome_items if i.status == "pending"]
        case.update_outcome_item(pending[0].item_id if pending else "no-such-item", "completed", AT)
    elif kind == "no_agreement":
        case.record_no_agreement("none reached")
    elif kind == "follow_up":
        case.record_follow_up(FollowUp("call", [], "satisfied", BY, AT))
    elif kind == "hold":
        case.set_retention_hold(action[1])
    elif kind == "prepare":                 # the work the current stage is for
        stage = case.stage
        if stage in ("referral_received", "eligibility"):
            decide_eligibility(case, True, True, "suitable", AT, BY)
        elif stage == "contact_and_information":
            _apply(case, ("inform_all",))
        elif stage in ("consent", "risk_and_safety"):
            _apply(case, ("consent_all",))
        elif stage == "preparation":
            case.allocate(["f1", "f2"], AT, BY)
            case.choose_intervention("indirect_letters")
        elif stage in ("intervention", "outcome_agreement"):
            case.record_no_agreement("none reached")
        else:
            case.record_follow_up(FollowUp("call", [], "satisfied", BY, AT))


@PROPERTY
@given(st.lists(actions, min_size=25, max_size=80))
def test_any_sequence_of_attempts_keeps_the_stage_and_history_consistent(sequence):
    case = fresh()
    for action in sequence:
        before = copy.deepcopy(case)
        try:
            _apply(case, action)
        except CaseRuleBroken as refused:
            if before.is_closed:
                assert refused.condition == "case_open"
            # decide_eligibility has its own test of a refusal leaving the case unchanged.
            if action[0] != "decide":
                assert case == before, action
        else:
            if action[0] in ("move", "advance"):
                assert (before.stage, case.stage) in TRANSITIONS
            if action[0] == "close":
                assert case.is_closed and case.closure.reason == action[1]
        if before.is_closed:            # a closed case takes nothing but a retention hold
            assert dataclasses.replace(case, retention_hold=before.retention_hold) == before, action
        assert case.stage in STAGES
        assert case.history[:len(before.history)] == before.history, "history is append-only"
        assert len(case.history) - len(before.history) <= 2
        assert case.history[-1].stage == case.stage
        assert case.is_closed == (case.closure is not None)
        for a, b in zip(stages_of(case), stages_of(case)[1:]):
            assert (a, b) in TRANSITIONS or (b == "closed" and a in OPEN_STAGES), (a, b)
    assert stages_of(case)[0] == "referral_received"
    assert stages_of(case).count("closed") <= 1


# =============================================================================================
# 2. Consent
# =============================================================================================
EXPECTED_CONSENT_MOVES = {
    "not_requested": {"requested", "given", "declined"},
    "requested": {"given", "declined", "expired"},
    "given": {"withdrawn", "expired"},
    "declined": {"requested", "given"},
    "withdrawn": {"requested", "given"},
    "expired": {"requested", "given"},
}


def test_consent_moves_table():
    assert {k: set(v) for k, v in CONSENT_MOVES.items()} == EXPECTED_CONSENT_MOVES
    assert set(CONSENT_MOVES) == set(CONSENT_STATUSES)


@pytest.mark.parametrize("frm, to", [(f, t) for f in CONSENT_STATUSES for t in CONSENT_STATUSES])
def test_every_consent_pair(frm, to):
    case = fresh()
    ann = victim(case)
    ann.consent_status, ann.process_stopped = frm, frm == "withdrawn"
    before = copy.deepcopy(case)
    if to in EXPECTED_CONSENT_MOVES[frm]:
        record = case.record_consent(ann.participant_id, to, "written", AT, BY, "by phone")
        assert (record.status, record.method, record.at, record.recorded_by, record.note) == \
            (to, "written", AT, BY, "by phone")
        assert ann.consent_history == [record]
        assert (ann.consent_status, ann.consent_method, ann.consent_at) == (to, "written", AT)
        assert ann.consent_current is (to == "given")
    else:
        with pytest.raises(CaseRuleBroken) as info:
            case.record_consent(ann.participant_id, to, "written", AT, BY)
        assert info.value.condition == "consent_sequence"
        assert "Ann Smith" in info.value.description and frm in info.value.description
        assert case == before


def test_a_withdrawal_stops_the_process_and_giving_again_resumes_it():
    case = fresh()
    ann = victim(case)
    case.record_consent(ann.participant_id, "given", "verbal", AT, BY)
    assert ann.consent_current and not ann.process_stopped
    case.record_consent(ann.participant_id, "withdrawn", "", AT, BY)
    assert ann.process_stopped and not ann.consent_current and ann.consent_status == "withdrawn"
    case.record_consent(ann.participant_id, "requested", "", AT, BY)
    assert ann.process_stopped and not ann.consent_current          # asking again does not resume
    case.record_consent(ann.participant_id, "given", "written", AT, BY)
    assert not ann.process_stopped and ann.consent_current
    assert [r.status for r in ann.consent_history] == ["given", "withdrawn", "requested", "given"]


def test_a_withdrawal_then_given_again_directly_resumes():
    case = fresh()
    bob = responsible(case)
    for status in ("given", "withdrawn", "given"):
        case.record_consent(bob.participant_id, status, "verbal", AT, BY)
    assert bob.consent_current and not bob.process_stopped


def test_expiry_of_a_given_consent_is_not_a_withdrawal():
    case = fresh()
    ann = victim(case)
    case.record_consent(ann.participant_id, "given", "verbal", AT, BY)
    case.record_consent(ann.participant_id, "expired", "", AT, BY)
    assert not ann.process_stopped and not ann.consent_current


@pytest.mark.parametrize("initiated_by, allowed", [("offender_led", True), ("victim_led", False)])
def test_consent_via_the_officer_in_charge_only_in_offender_led_cases(initiated_by, allowed):
    case = fresh(initiated_by=initiated_by)
    bob = responsible(case)
    before = copy.deepcopy(case)
    if allowed:
        case.record_consent(bob.participant_id, "given", "via_officer_in_charge", AT, BY)
        assert bob.consent_current and bob.consent_method == "via_officer_in_charge"
    else:
        with pytest.raises(CaseRuleBroken) as info:
            case.record_consent(bob.participant_id, "given", "via_officer_in_charge", AT, BY)
        assert info.value.condition == "officer_in_charge_offender_led"
        assert case == before


def test_given_needs_a_method_other_answers_do_not():
    case = fresh()
    ann = victim(case)
    before = copy.deepcopy(case)
    with pytest.raises(CaseRuleBroken) as info:
        case.record_consent(ann.participant_id, "given", "", AT, BY)
    assert info.value.condition == "consent_method" and case == before
    case.record_consent(ann.participant_id, "requested", "", AT, BY)
    case.record_consent(ann.participant_id, "declined", "", AT, BY)
    assert ann.consent_status == "declined"


def test_consent_of_someone_not_on_the_case_is_refused():
    case = fresh()
    with pytest.raises(CaseRuleBroken) as info:
        case.record_consent("nobody", "given", "verbal", AT, BY)
    assert info.value.condition == "participant_on_case"


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from([0, 1]), st.sampled_from(CONSENT_STATUSES),
                          st.sampled_from([*CONSENT_METHODS, ""])), max_size=30),
       st.sampled_from(["victim_led", "offender_led"]))
def test_consent_history_grows_by_one_per_record_and_tracks_the_stop(attempts, initiated_by):
    case = fresh(initiated_by=initiated_by)
    people = principals(case)
    stopped = [False, False]            # the model: withdrawn since last given
    status = ["not_requested", "not_requested"]
    for who, to, method in attempts:
        person = people[who]
        before = copy.deepcopy(case)
        ok = (to in EXPECTED_CONSENT_MOVES[status[who]]
              and not (method == "via_officer_in_charge" and initiated_by != "offender_led")
              and not (to == "given" and not method))
        try:
            case.record_consent(person.participant_id, to, method, AT, BY)
        except CaseRuleBroken:
            assert not ok
            assert case == before
            continue
        assert ok
        status[who] = to
        stopped[who] = to == "withdrawn" or (stopped[who] and to != "given")
        assert len(person.consent_history) == len(before.participant(person.participant_id).consent_history) + 1
        assert person.consent_history[-1].status == to
        other = people[1 - who]
        assert other == before.participant(other.participant_id)
    for who, person in enumerate(people):
        assert person.consent_status == status[who]
        assert person.process_stopped == stopped[who]
        assert person.consent_current == (status[who] == "given" and not stopped[who])


# =============================================================================================
# 3. Allocation
# =============================================================================================
TODAY = date(2026, 6, 10)
GOOD = FacilitatorRecord("f1", "cumbria", True, date(2027, 1, 1), "advanced", "Fay Lee")


def _problems(ids, *records, seriousness="standard"):
    return allocation_problems(ids, {r.facilitator_id: r for r in records}, "cumbria", seriousness, TODAY)


@pytest.mark.parametrize("seriousness", ["standard", "serious", "sensitive_complex"])
def test_a_good_facilitator_has_no_problems(seriousness):
    assert _problems(["f1"], GOOD, seriousness=seriousness) == []


def _with(**changes) -> FacilitatorRecord:
    return dataclasses.replace(GOOD, **changes)


@pytest.mark.parametrize("record, seriousness, expected", [
    (_with(county="lancashire"), "standard", [("facilitator_county", "facilitator Fay Lee does not work in cumbria")]),
    (_with(active=False), "standard", [("facilitator_active", "facilitator Fay Lee is not active")]),
    (_with(vetting_expires_on=TODAY - timedelta(days=1)), "standard",
     [("facilitator_vetting", "facilitator Fay Lee has no current vetting")]),
    (_with(vetting_expires_on=None), "standard", [("facilitator_vetting", "facilitator Fay Lee has no current vetting")]),
    (_with(vetting_expires_on=TODAY), "standard", []),              # expiring today is still current
    (_with(vetting_expires_on=TODAY + timedelta(days=1)), "standard", []),
    (_with(training_level="foundation"), "standard", []),
    (_with(training_level="intermediate"), "standard", []),
    (_with(training_level="foundation"), "serious",
     [("facilitator_training", "facilitator Fay Lee is trained to foundation; a serious case needs advanced")]),
    (_with(training_level="intermediate"), "serious",
     [("facilitator_training", "facilitator Fay Lee is trained to intermediate; a serious case needs advanced")]),
    (_with(training_level="foundation"), "sensitive_complex",
     [("facilitator_training",
       "facilitator Fay Lee is trained to foundation; a sensitive complex case needs advanced")]),
    (_with(training_level="intermediate"), "sensitive_complex",
     [("facilitator_training",
       "facilitator Fay Lee is trained to intermediate; a sensitive complex case needs advanced")]),
    (_with(training_level="advanced"), "serious", []),
    (_with(training_level=""), "standard",
     [("facilitator_training", "facilitator Fay Lee is trained to no level; a standard case needs foundation")]),
    (_with(training_level="expert"), "standard",
     [("facilitator_training", "facilitator Fay Lee is trained to expert; a standard case needs foundation")]),
    (_with(name=""), "standard", []),
    (_with(name="", active=False), "standard", [("facilitator_active", "facilitator f1 is not active")]),
    (_with(county="lancashire", active=False, vetting_expires_on=None, training_level="foundation"), "serious",
     [("facilitator_county", "facilitator Fay Lee does not work in cumbria"),
      ("facilitator_active", "facilitator Fay Lee is not active"),
      ("facilitator_vetting", "facilitator Fay Lee has no current vetting"),
      ("facilitator_training", "facilitator Fay Lee is trained to foundation; a serious case needs advanced")]),
])
def test_allocation_rule_table(record, seriousness, expected):
    assert _problems(["f1"], record, seriousness=seriousness) == expected


def test_an_unknown_facilitator_is_named():
    assert _problems(["f9"], GOOD) == [("facilitator_known", "facilitator f9 is not on the facilitator register")]


@pytest.mark.parametrize("ids", [[], ["f1", "f2", "f3"]])
def test_one_or_two_facilitators(ids):
    records = [_with(facilitator_id=f, name=f.upper()) for f in ("f1", "f2", "f3")]
    assert _problems(ids, *records) == [("facilitator_count", "allocate one or two facilitators")]


def test_two_good_facilitators_are_fine_and_only_the_bad_one_is_named():
    lead, co = GOOD, _with(facilitator_id="f2", name="Gus Ray", active=False)
    assert _problems(["f1"], lead, co) == []
    assert _problems(["f1", "f2"], lead, co) == [("facilitator_active", "facilitator Gus Ray is not active")]


def test_a_facilitator_named_twice_is_a_problem_and_is_checked_once():
    assert _problems(["f1", "f1"], GOOD) == [("facilitators_distinct", "the same facilitator is named twice")]
    bad = _with(active=False)
    assert _problems(["f1", "f1"], bad) == [("facilitators_distinct", "the same facilitator is named twice"),
                                            ("facilitator_active", "facilitator Fay Lee is not active")]
    assert _problems(["f1", "f1", "f1"], GOOD) == [("facilitator_count", "allocate one or two facilitators"),
                                                   ("facilitators_distinct", "the same facilitator is named twice")]


facilitator_records = st.builds(
    FacilitatorRecord, facilitator_id=st.sampled_from(["f1", "f2", "f3"]),
    county=st.sampled_from(["cumbria", "lancashire"]), active=st.booleans(),
    vetting_expires_on=st.none() | st.dates(date(2026, 6, 1), date(2026, 6, 20)),
    training_level=st.sampled_from(["foundation", "intermediate", "advanced", "", "expert"]),
    name=st.sampled_from(["", "Fay Lee", "Gus Ray"]))


@PROPERTY
@given(st.lists(facilitator_records, max_size=3), st.lists(st.sampled_from(["f1", "f2", "f3", "f4"]), max_size=4),
       st.sampled_from(["standard", "serious", "sensitive_complex"]))
def test_allocation_problems_match_an_independent_statement_of_the_rule(records, ids, seriousness):
    by_id = {r.facilitator_id: r for r in records}
    expected = []                        # (rule, who is named or None)
    if not 1 <= len(ids) <= 2:
        expected.append(("facilitator_count", None))
    if len(set(ids)) != len(ids):
        expected.append(("facilitators_distinct", None))
    rank = {"foundation": 1, "intermediate": 2, "advanced": 3}
    for fid in set(ids):
        r = by_id.get(fid)
        if r is None:
            expected.append(("facilitator_known", fid))
            continue
        who = r.name or fid
        if r.county != "cumbria":
            expected.append(("facilitator_county", who))
        if not r.active:
            expected.append(("facilitator_active", who))
        if r.vetting_expires_on is None or r.vetting_expires_on < TODAY:
            expected.append(("facilitator_vetting", who))
        if rank.get(r.training_level, 0) < (1 if seriousness == "standard" else 3):
            expected.append(("facilitator_training", who))
    found = allocation_problems(ids, by_id, "cumbria", seriousness, TODAY)
    assert len(found) == len(expected)
    for rule, text in found:
        match = [e for e in expected if e[0] == rule and (e[1] is None or f"facilitator {e[1]} " in text)]
        assert match, (rule, text)
        expected.remove(match[0])
    assert expected == []


@pytest.mark.parametrize("category, flags, expected", [
    ("burglary", [], "standard"),
    ("theft", [], "standard"),
    ("criminal_damage", [], "standard"),
    ("burglary", ["domestic_abuse"], "sensitive_complex"),
    ("burglary", ["sexual_offence"], "sensitive_complex"),
    ("sexual_offence", [], "sensitive_complex"),
    ("stalking_and_harassment", [], "sensitive_complex"),
    ("burglary", ["serious_violence"], "serious"),
    ("burglary", ["hate_crime"], "serious"),
    ("robbery", [], "serious"),
    ("violence_against_the_person", [], "serious"),
    ("robbery", ["domestic_abuse"], "sensitive_complex"),           # the more demanding wins
    ("violence_against_the_person", ["hate_crime", "sexual_offence"], "sensitive_complex"),
    ("stalking_and_harassment", ["hate_crime"], "sensitive_complex"),
])
def test_seriousness_mapping(category, flags, expected):
    assert seriousness_of(category, flags) == expected


def test_a_cases_seriousness_comes_from_its_offence():
    data = referral()
    data["offence"].update(category="robbery")
    assert open_from(data).seriousness == "serious"
    data["offence"].update(domestic_abuse=True)
    assert open_from(data).seriousness == "sensitive_complex"
    assert fresh().seriousness == "standard"


# =============================================================================================
# 4. Victims' Code clocks
# =============================================================================================
ENHANCED = {"intimidated", "persistently_targeted", "bereaved_by_crime", "mental_health", "learning_disability",
            "physical_disability"}


def clock_case(reported: str | None = "2026-06-05", vulnerabilities=(), offence_date="2026-05-20") -> Case:
    case = fresh()
    case.offence_date, case.offence_reported_date = offence_date, reported
    victim(case).vulnerabilities = list(vulnerabilities)
    return case


def clocks_by_kind(case: Case, person=None) -> dict:
    return {c.kind: c for c in start_clocks(case, person or victim(case))}


@pytest.mark.parametrize("vulnerability", VULNERABILITIES)
def test_enhanced_rights_victims_get_information_in_one_working_day(vulnerability):
    case = clock_case("2026-06-05", [vulnerability])      # Friday
    clocks = clocks_by_kind(case)
    assert set(clocks) == {"rj_information", "support_referral"}
    expected = date(2026, 6, 8) if vulnerability in ENHANCED else date(2026, 6, 12)
    assert clocks["rj_information"].due_on == expected
    assert clocks["support_referral"].due_on == date(2026, 6, 9)


def test_a_victim_without_vulnerabilities_gets_five_working_days():
    clocks = clocks_by_kind(clock_case("2026-06-05", []))
    assert clocks["rj_information"].due_on == date(2026, 6, 12)
    assert clocks["support_referral"].due_on == date(2026, 6, 9)


def test_clock_fields():
    case = clock_case("2026-06-05", ["intimidated"])
    ann = victim(case)
    clocks = start_clocks(case, ann)
    assert [c.kind for c in clocks] == ["rj_information", "support_referral"]
    for c in clocks:
        uuid.UUID(c.clock_id)
        assert (c.participant_id, c.started_on, c.basis, c.met_at, c.breached_at) == \
            (ann.participant_id, date(2026, 6, 5), "crime reported", None, None)
    assert clocks[0].clock_id != clocks[1].clock_id


@pytest.mark.parametrize("role", ["responsible_person", "supporter", "parent_or_guardian"])
def test_non_victims_get_no_clocks(role):
    case = clock_case()
    person = new_participant(role, "Zed", "", None, 40, ["intimidated"], True, {}, RECEIVED.date())
    assert start_clocks(case, person) == []
    assert start_clocks(case, responsible(case)) == []


@pytest.mark.parametrize("reported, expected", [
    ("2026-06-05", (date(2026, 6, 5), "crime reported")),
    (None, (date(2026, 5, 20), "offence date (no report date given)")),
    ("", (date(2026, 5, 20), "offence date (no report date given)")),
])
def test_clocks_start_from_the_report_date_else_the_offence_date(reported, expected):
    case = clock_case(reported)
    assert clock_start(case) == expected
    clocks = start_clocks(case, victim(case))
    assert {(c.started_on, c.basis) for c in clocks} == {expected}


def test_a_referral_with_a_report_date_starts_clocks_from_it():
    data = referral()
    data["offence"]["reported_date"] = "2026-05-22"
    assert clock_start(open_from(data)) == (date(2026, 5, 22), "crime reported")


@pytest.mark.parametrize("reported, enhanced, rj_due, support_due", [
    # Christmas 2026: Friday 25th, Boxing Day substitute Monday 28th; New Year's Day Friday 1 Jan 2027.
    ("2026-12-23", True, date(2026, 12, 24), date(2026, 12, 29)),
    ("2026-12-24", True, date(2026, 12, 29), date(2026, 12, 30)),
    ("2026-12-24", False, date(2027, 1, 5), date(2026, 12, 30)),
    ("2026-12-25", False, date(2027, 1, 5), date(2026, 12, 30)),
    ("2026-12-23", False, date(2027, 1, 4), date(2026, 12, 29)),
    # Easter 2026: Good Friday 3 April, Easter Monday 6 April.
    ("2026-04-02", True, date(2026, 4, 7), date(2026, 4, 8)),
    ("2026-04-02", False, date(2026, 4, 13), date(2026, 4, 8)),
    ("2026-04-03", True, date(2026, 4, 7), date(2026, 4, 8)),
    # A weekend: reported Friday, Saturday or Sunday.
    ("2026-06-05", True, date(2026, 6, 8), date(2026, 6, 9)),
    ("2026-06-06", True, date(2026, 6, 8), date(2026, 6, 9)),
    ("2026-06-07", False, date(2026, 6, 12), date(2026, 6, 9)),
])
def test_worked_examples(reported, enhanced, rj_due, support_due):
    clocks = clocks_by_kind(clock_case(reported, ["intimidated"] if enhanced else []))
    assert clocks["rj_information"].due_on == rj_due
    assert clocks["support_referral"].due_on == support_due


def test_extra_holidays_push_the_clocks_on():
    case = clock_case("2026-06-05", ["intimidated"])
    clocks = {c.kind: c for c in start_clocks(case, victim(case), frozenset({date(2026, 6, 8)}))}
    assert clocks["rj_information"].due_on == date(2026, 6, 9)
    assert clocks["support_referral"].due_on == date(2026, 6, 10)


def test_a_child_victim_has_enhanced_rights():
    data = referral()
    data["participants"][0].update(age=15, vulnerabilities=[])
    data["offence"]["reported_date"] = "2026-06-05"
    case = open_from(data)
    assert victim(case).is_youth
    assert clocks_by_kind(case)["rj_information"].due_on == date(2026, 6, 8)


@pytest.mark.parametrize("flag", ["domestic_abuse", "sexual_offence", "hate_crime"])
def test_a_victim_of_the_most_serious_crime_has_enhanced_rights(flag):
    data = referral()
    data["participants"][0].update(vulnerabilities=[])
    data["offence"].update({"reported_date": "2026-06-05", flag: True})
    case = open_from(data)
    assert clocks_by_kind(case)["rj_information"].due_on == date(2026, 6, 8)


def test_work_already_recorded_meets_the_clock_at_once():
    case = clock_case("2026-06-05", [])
    ann = victim(case)
    ann.information_offered_at = AT
    clocks = clocks_by_kind(case)
    assert clocks["rj_information"].met_at == AT and clocks["support_referral"].met_at is None
    ann.support_referral_at = AT
    assert clocks_by_kind(case)["support_referral"].met_at == AT


def test_recording_the_action_meets_only_that_persons_open_clock_of_that_kind():
    case = clock_case("2026-06-05", [])
    ann = victim(case)
    case.clocks = start_clocks(case, ann)
    met = case.record_information_offered(ann.participant_id, AT)
    assert [c.kind for c in met] == ["rj_information"] and met[0].met_at == AT
    assert case.record_information_offered(ann.participant_id, AT + timedelta(days=1)) == []
    assert {c.kind: c.met_at for c in case.clocks} == {"rj_information": AT, "support_referral": None}


def _clock(due: date, met_at=None):
    case = clock_case("2026-06-05", [])
    [rj, _] = start_clocks(case, victim(case))
    rj.due_on, rj.met_at = due, met_at
    return rj


@pytest.mark.parametrize("today, overdue", [
    (date(2026, 6, 11), False), (date(2026, 6, 12), False),       # the due day itself is not overdue
    (date(2026, 6, 13), True), (date(2026, 7, 1), True),
])
def test_is_overdue_only_after_the_due_day(today, overdue):
    clock = _clock(date(2026, 6, 12))
    assert is_overdue(clock, today) is overdue
    clock.met_at = AT
    assert is_overdue(clock, today) is False


@pytest.mark.parametrize("met_at, late", [
    (datetime(2026, 6, 12, 11, 0, tzinfo=LONDON), False),
    (datetime(2026, 6, 12, 22, 59, tzinfo=timezone.utc), False),    # 23:59 in London, still the due day
    (datetime(2026, 6, 12, 23, 30, tzinfo=timezone.utc), True),     # 00:30 on the 13th in London (BST)
    (datetime(2026, 6, 13, 0, 1, tzinfo=LONDON), True),
    (datetime(2026, 6, 11, 23, 30, tzinfo=timezone.utc), False),
    (datetime(2026, 6, 13, 1, 0, tzinfo=timezone(timedelta(hours=5))), False),  # 21:00 on the 12th in London
])
def test_met_after_the_due_day_in_london_is_late(met_at, late):
    assert was_met_late(_clock(date(2026, 6, 12), met_at)) is late
    assert was_met_late(_clock(date(2026, 6, 12))) is False


def test_23_30_utc_on_the_due_day_is_late_in_summer_but_not_in_winter():
    summer = _clock(date(2026, 6, 8), datetime(2026, 6, 8, 23, 30, tzinfo=timezone.utc))
    winter = _clock(date(2026, 12, 24), datetime(2026, 12, 24, 23, 30, tzinfo=timezone.utc))
    assert was_met_late(summer) and not was_met_late(winter)


@pytest.mark.parametrize("at, day", [
    (datetime(2026, 6, 8, 23, 30, tzinfo=timezone.utc), date(2026, 6, 9)),       # BST
    (datetime(2026, 6, 8, 22, 59, tzinfo=timezone.utc), date(2026, 6, 8)),
    (datetime(2026, 12, 24, 23, 30, tzinfo=timezone.utc), date(2026, 12, 24)),   # GMT
    (datetime(2026, 3, 28, 23, 30, tzinfo=timezone.utc), date(2026, 3, 28)),     # the night BST starts
    (datetime(2026, 3, 29, 23, 30, tzinfo=timezone.utc), date(2026, 3, 30)),     # the first BST night
    (datetime(2026, 10, 24, 23, 30, tzinfo=timezone.utc), date(2026, 10, 25)),   # the last BST night
    (datetime(2026, 10, 25, 23, 30, tzinfo=timezone.utc), date(2026, 10, 25)),   # back on GMT
])
def test_local_day_is_the_day_in_london(at, day):
    assert local_day(at) == day


@PROPERTY
@given(st.dates(date(2019, 1, 1), date(2030, 12, 31)), st.booleans(), st.booleans())
def test_clocks_are_due_on_a_working_day_after_the_start_and_overdue_exactly_after(reported, enhanced, use_report):
    case = clock_case(reported.isoformat() if use_report else None, ["intimidated"] if enhanced else [],
                      offence_date=reported.isoformat())
    clocks = clocks_by_kind(case)
    for kind, days in (("rj_information", 1 if enhanced else 5), ("support_referral", 2)):
        clock = clocks[kind]
        assert clock.started_on == reported
        assert clock.due_on > reported and is_working_day(clock.due_on)
        assert working_days_between(reported, clock.due_on) == days
        assert working_days_between(reported, clock.due_on - timedelta(days=1)) == days - 1
        for offset in range(-1, 12):
            day = clock.due_on + timedelta(days=offset)
            assert is_overdue(clock, day) is (offset > 0)
            noon = datetime(day.year, day.month, day.day, 12, tzinfo=LONDON)
            late_night = datetime(day.year, day.month, day.day, 23, 59, tzinfo=LONDON)
            for at in (noon, late_night, late_night.astimezone(timezone.utc)):
                met = copy.copy(clock)
                met.met_at = at
                assert was_met_late(met) is (offset > 0)
                assert not is_overdue(met, day)
    assert clocks["rj_information"].due_on <= clocks["support_referral"].due_on or not enhanced


# =============================================================================================
# 5. Access
# =============================================================================================
FACILITATOR_ACTIONS = {"record_consent", "record_information_offered", "record_support_referral", "add_note",
                       "record_outcome", "record_follow_up"}
ALL_ACTIONS = set(ACTIONS)


def test_actions_table():
    assert ALL_ACTIONS == {"decide_eligibility", "move_stage", "choose_intervention", "add_participant",
                           "record_consent", "record_information_offered", "record_support_referral", "add_note",
                           "allocate_facilitators", "record_outcome", "record_follow_up", "close_case",
                           "retention_hold"}
    assert {a for a, roles in ACTIONS.items() if "facilitator" in roles} == FACILITATOR_ACTIONS
    assert ACTIONS["retention_hold"] == ("manager",)
    assert all("auditor" not in roles and "admin" not in roles and "partner" not in roles
               for roles in ACTIONS.values())


# principal, allocated facilitators, may read, actions it may take
ACCESS = [
    (staff("coordinator"), [], True, ALL_ACTIONS - {"retention_hold"}),
    (staff("manager"), [], True, ALL_ACTIONS),
    (staff("auditor"), [], True, set()),
    (staff("facilitator", subject="f1"), ["f1"], True, FACILITATOR_ACTIONS),
    (staff("facilitator", subject="f1"), ["f2", "f1"], True, FACILITATOR_ACTIONS),
    (staff("facilitator", subject="f1"), ["f2"], False, set()),
    (staff("facilitator", subject="f1"), [], False, set()),
    (staff("admin"), [], False, set()),
    (staff("partner"), [], False, set()),
    (staff(), [], False, set()),
    (Principal(kind="agency", subject=AGENCY, roles=frozenset({"partner"}), counties=frozenset({"cumbria"}),
               agency_id=AGENCY), [], False, set()),
    (Principal(kind="agency", subject="x", roles=frozenset({"coordinator", "manager"}),
               counties=frozenset({"cumbria"})), [], False, set()),
    (Principal(kind="service", subject="svc", roles=frozenset({"manager"}), counties=frozenset({"cumbria"})),
     [], False, set()),
    # Wrong county: nothing, whatever the roles.
    (staff("coordinator", counties=("lancashire",)), [], False, set()),
    (staff("manager", counties=("lancashire",)), [], False, set()),
    (staff("auditor", counties=("lancashire",)), [], False, set()),
    (staff("facilitator", counties=("lancashire",), subject="f1"), ["f1"], False, set()),
    (staff("manager", counties=()), [], False, set()),
    # Several counties, several roles.
    (staff("coordinator", counties=("lancashire", "cumbria")), [], True, ALL_ACTIONS - {"retention_hold"}),
    (staff("auditor", "facilitator", subject="f1"), ["f1"], True, FACILITATOR_ACTIONS),
    (staff("auditor", "facilitator", subject="f1"), [], True, set()),
    (staff("coordinator", "facilitator", subject="f1"), [], True, ALL_ACTIONS - {"retention_hold"}),
    (staff("admin", "facilitator", subject="f1"), ["f1"], True, FACILITATOR_ACTIONS),
    (staff("coordinator", "manager"), [], True, ALL_ACTIONS),
]


@pytest.mark.parametrize("principal, allocated, reads, acts", ACCESS)
def test_access_table(principal, allocated, reads, acts):
    assert can_read(principal, "cumbria", allocated) is reads
    for action in ACTIONS:
        assert can_act(principal, action, "cumbria", allocated) is (action in acts), action
    # Acting never goes beyond reading.
    assert not acts or reads


def test_case_visible_to_uses_the_same_rule():
    case = fresh()
    assert case.visible_to(staff("auditor")) and not case.visible_to(staff("facilitator", subject="f1"))
    case.facilitators = [Allocation("f1", True, AT, BY)]
    assert case.visible_to(staff("facilitator", subject="f1"))
    assert not case.visible_to(staff("facilitator", subject="f1", counties=("lancashire",)))


@PROPERTY
@given(st.sets(st.sampled_from(["coordinator", "manager", "auditor", "facilitator", "admin", "partner"])),
       st.sets(st.sampled_from(["cumbria", "lancashire"])), st.sampled_from(["staff", "agency"]),
       st.lists(st.sampled_from(["f1", "f2"]), max_size=2), st.sampled_from(sorted(ACTIONS)))
def test_whoever_may_act_may_read_and_only_managers_hold(roles, counties, kind, allocated, action):
    p = Principal(kind=kind, subject="f1", roles=frozenset(roles), counties=frozenset(counties))
    acts = can_act(p, action, "cumbria", allocated)
    if acts:
        assert can_read(p, "cumbria", allocated)
        assert kind == "staff" and "cumbria" in counties
    if action == "retention_hold":
        assert acts is ("manager" in roles and kind == "staff" and "cumbria" in counties)
    if roles <= {"auditor", "admin", "partner"}:
        assert not acts
