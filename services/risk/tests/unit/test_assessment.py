"""An assessment's life: made (standing at once, or awaiting a manager), approved or rejected by
someone other than the assessor, expired by time, a change of stage or new information, or
superseded; and the input it refuses."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from risk_examples import AT, ASSESSOR, MANAGER, PROPERTY, RULES, VALID_DAYS, approved, factor, factors_st, make
from mend_risk.domain.assessment import MAX_VALID_DAYS, AssessmentRuleBroken, InvalidAssessment, assess
from mend_risk.domain.vocabulary import CASE_STAGES, STATUSES

LATER = AT + timedelta(hours=2)
SENSITIVE = [factor("domestic_abuse", "low", "police")]


# -- making one -----------------------------------------------------------------------------------
def test_an_assessment_that_needs_no_approval_stands_at_once_approved_by_the_rules():
    a = make([factor("emotional_harm", "medium")], supersedes="old-1", assessment_id="a-1")
    assert (a.assessment_id, a.case_id, a.county, a.participant_id, a.stage, a.assessor) == \
        ("a-1", "case-1", "cumbria", "p-victim", "risk_and_safety", ASSESSOR)
    assert a.status == "approved" and a.approved_by == "rule:risk-rules-v1" and a.approved_at == AT
    assert a.approved_by_rule
    assert a.assessed_at == AT and a.expires_at == AT + timedelta(days=VALID_DAYS)
    assert a.factors == (factor("emotional_harm", "medium"),) and a.supersedes == "old-1" and a.version == 1
    assert a.conclusion == RULES.evaluate([factor("emotional_harm", "medium")])
    assert a.is_current(AT) and a.allows_direct_contact(AT)
    assert a.rejected_by is a.rejected_at is a.expired_at is a.expiry_reason is None


@pytest.mark.parametrize("factors, kw", [
    (SENSITIVE, {}),
    ([factor("physical_harm_from_participant", "high")], {}),
    ([], {"offence_flags": ["sexual_offence"]}),
])
def test_a_sensitive_or_high_assessment_awaits_a_manager(factors, kw):
    a = make(factors, **kw)
    assert a.status == "awaiting_approval" and a.approved_by is None and a.approved_at is None
    assert not a.is_current(AT) and not a.allows_direct_contact(AT) and not a.approved_by_rule


def test_each_assessment_gets_its_own_id():
    assert make().assessment_id != make().assessment_id


def test_the_evaluation_inputs_reach_the_rules():
    youth = make(is_youth=True, participant_role="responsible_person")
    assert youth.conclusion.measures == ("supporter_present",)
    assert make(offence_flags=["hate_crime"]).status == "awaiting_approval"


@pytest.mark.parametrize("kw, named", [
    ({"case_id": ""}, "case_id is required"),
    ({"county": "  "}, "county is required"),
    ({"participant_id": None}, "participant_id is required"),
    ({"assessor": ""}, "assessor is required"),
    ({"stage": "closed"}, "stage: 'closed'"),
    ({"stage": "nowhere"}, "stage: 'nowhere'"),
    ({"valid_days": 0}, "valid_days"),
    ({"valid_days": MAX_VALID_DAYS + 1}, "valid_days"),
    ({"valid_days": True}, "valid_days"),
    ({"valid_days": 30.5}, "valid_days"),
    ({"supersedes": ""}, "supersedes"),
    ({"factors": [factor("flood")]}, "factors[0].kind: 'flood'"),
    ({"participant_role": "witness"}, "participant_role"),
    ({"now": datetime(2026, 6, 10, 10, 0)}, "time zone"),
])
def test_bad_input_is_refused_naming_it(kw, named):
    args = dict(case_id="case-1", county="cumbria", participant_id="p1", stage="risk_and_safety", assessor=ASSESSOR,
                factors=[], rules=RULES, now=AT, valid_days=30)
    args.update(kw)
    with pytest.raises(InvalidAssessment) as info:
        assess(**args)
    assert named in info.value.message and isinstance(info.value, AssessmentRuleBroken)


def test_all_input_problems_are_named_together():
    with pytest.raises(InvalidAssessment) as info:
        assess(case_id="", county="", participant_id="p1", stage="x", assessor="a", factors=[factor("flood")],
               rules=RULES, now=AT, valid_days=0)
    for named in ("case_id", "county", "stage", "valid_days", "factors[0].kind"):
        assert named in info.value.message


@pytest.mark.parametrize("stage", CASE_STAGES)
def test_an_assessment_can_be_made_at_every_open_stage(stage):
    assert make(stage=stage).stage == stage


# -- approval: four eyes -----------------------------------------------------------------------------
def test_a_manager_approves():
    a = make(SENSITIVE)
    a.approve(MANAGER, LATER)
    assert (a.status, a.approved_by, a.approved_at) == ("approved", MANAGER, LATER)
    assert a.is_current(LATER) and not a.approved_by_rule
    assert a.allows_direct_contact(LATER) == (a.conclusion.decision == "direct_allowed")


def test_the_approver_cannot_be_the_assessor():
    a = make(SENSITIVE)
    before = copy.deepcopy(a)
    with pytest.raises(AssessmentRuleBroken) as info:
        a.approve(ASSESSOR, LATER)
    assert str(info.value) == "the approver cannot be the assessor" and info.value.rule == "four_eyes"
    assert a == before


def test_a_manager_cannot_reject_their_own_assessment_either():
    a = make(SENSITIVE, assessor=MANAGER)
    with pytest.raises(AssessmentRuleBroken) as info:
        a.reject(MANAGER, LATER, "not enough evidence")
    assert info.value.rule == "four_eyes" and a.status == "awaiting_approval"


@pytest.mark.parametrize("by", ["", "   ", None])
def test_the_approver_must_be_named(by):
    a = make(SENSITIVE)
    with pytest.raises(InvalidAssessment):
        a.approve(by, LATER)
    assert a.status == "awaiting_approval"


def _rejected():
    a = make(SENSITIVE)
    a.reject(MANAGER, LATER, "evidence from police missing")
    return a


def _expired():
    a = make(SENSITIVE)
    a.expire("new information", LATER)
    return a


def _superseded():
    a = make(SENSITIVE)
    a.supersede(LATER)
    return a


@pytest.mark.parametrize("build, status", [(lambda: approved(SENSITIVE), "approved"), (approved, "approved"),
                                           (_rejected, "rejected"), (_expired, "expired"),
                                           (_superseded, "superseded")])
def test_only_an_assessment_awaiting_approval_can_be_approved_or_rejected(build, status):
    a = build()
    before = copy.deepcopy(a)
    for attempt in (lambda: a.approve("staff:manager-2", LATER), lambda: a.reject("staff:manager-2", LATER, "no")):
        with pytest.raises(AssessmentRuleBroken) as info:
            attempt()
        assert info.value.rule == "awaiting_approval" and status.replace("_", " ") in str(info.value)
    assert a == before


def test_an_assessment_that_ran_out_while_waiting_cannot_be_approved():
    a = make(SENSITIVE, valid_days=1)
    with pytest.raises(AssessmentRuleBroken) as info:
        a.approve(MANAGER, AT + timedelta(days=1))
    assert info.value.rule == "not_run_out" and a.status == "awaiting_approval"
    a.approve(MANAGER, AT + timedelta(days=1) - timedelta(seconds=1))
    assert a.status == "approved"


def test_a_rejection_needs_a_reason_and_records_it():
    a = make(SENSITIVE)
    with pytest.raises(InvalidAssessment):
        a.reject(MANAGER, LATER, "  ")
    assert a.status == "awaiting_approval"
    a.reject(MANAGER, LATER, "  the police report was not checked  ")
    assert (a.status, a.rejected_by, a.rejected_at, a.rejection_reason) == \
        ("rejected", MANAGER, LATER, "the police report was not checked")
    assert not a.is_current(LATER) and not a.live


def test_times_must_be_aware():
    a = make(SENSITIVE)
    with pytest.raises(InvalidAssessment):
        a.approve(MANAGER, datetime(2026, 6, 10, 12, 0))
    with pytest.raises(InvalidAssessment):
        a.expire("x", datetime(2026, 6, 10, 12, 0))


# -- expiry and supersession ---------------------------------------------------------------------------
@pytest.mark.parametrize("build", [lambda: make(SENSITIVE), approved])
def test_a_standing_assessment_expires_once(build):
    a = build()
    assert a.expire("new police intelligence", LATER) is True
    assert (a.status, a.expired_at, a.expiry_reason) == ("expired", LATER, "new police intelligence")
    assert not a.is_current(LATER)
    assert a.expire("again", LATER + timedelta(hours=1)) is False
    assert (a.expired_at, a.expiry_reason) == (LATER, "new police intelligence")


@pytest.mark.parametrize("build, status", [(_rejected, "rejected"), (_superseded, "superseded")])
def test_expiring_what_no_longer_stands_changes_nothing(build, status):
    a = build()
    before = copy.deepcopy(a)
    assert a.expire("late", LATER) is False and a == before and a.status == status


def test_expiry_needs_a_reason():
    a = approved()
    with pytest.raises(InvalidAssessment):
        a.expire("", LATER)
    assert a.status == "approved"


def test_superseding_records_when_and_by_what():
    a = approved()
    assert a.supersede(LATER, "a-new") is True
    assert (a.status, a.expired_at, a.expiry_reason) == ("superseded", LATER, "superseded by assessment a-new")
    assert a.supersede(LATER) is False
    b = make(SENSITIVE)
    assert b.supersede(LATER) is True and b.expiry_reason == "superseded by a new assessment"


@pytest.mark.parametrize("build", [_rejected, _expired])
def test_a_rejected_or_expired_assessment_keeps_its_status_when_a_new_one_comes(build):
    a = build()
    before = copy.deepcopy(a)
    assert a.supersede(LATER, "a-new") is False and a == before


def test_expiry_by_time():
    a = approved(valid_days=30)
    end = AT + timedelta(days=30)
    assert a.is_current(end - timedelta(microseconds=1)) and a.allows_direct_contact(end - timedelta(microseconds=1))
    assert not a.is_current(end) and not a.allows_direct_contact(end) and a.has_run_out(end)
    assert a.status == "approved"          # time alone makes it not current; the sweep records it
    assert a.expire_if_run_out(end - timedelta(seconds=1)) is False and a.status == "approved"
    assert a.expire_if_run_out(end) is True
    assert a.status == "expired" and a.expired_at == end and "ran out" in a.expiry_reason
    assert a.expire_if_run_out(end + timedelta(days=1)) is False


def test_a_change_of_stage_expires_an_assessment_made_at_another_stage():
    a = approved(stage="risk_and_safety")
    assert a.expire_on_stage_change("risk_and_safety", LATER) is False and a.status == "approved"
    assert a.expire_on_stage_change("preparation", LATER) is True
    assert a.status == "expired" and a.expiry_reason.startswith("the case moved from risk and safety to preparation")


def test_new_information_expires_it():
    a = make(SENSITIVE)
    with pytest.raises(InvalidAssessment):
        a.expire_on_new_information(" ", LATER)
    assert a.expire_on_new_information("probation report: new threats", LATER) is True
    assert a.expiry_reason == "new information: probation report: new threats; a new assessment is due"


# -- properties ------------------------------------------------------------------------------------------
PEOPLE = ["staff:a", "staff:b", "staff:c"]


@PROPERTY
@given(st.sampled_from(PEOPLE), st.sampled_from(PEOPLE), st.lists(factors_st, min_size=1, max_size=4),
       st.booleans())
def test_four_eyes_whoever_the_people_and_whatever_the_factors(assessor, by, factors, reject):
    a = make(factors, assessor=assessor)
    if a.status != "awaiting_approval":
        return
    if by == assessor:
        with pytest.raises(AssessmentRuleBroken):
            a.reject(by, LATER, "no") if reject else a.approve(by, LATER)
        assert a.status == "awaiting_approval"
    else:
        a.reject(by, LATER, "no") if reject else a.approve(by, LATER)
        assert a.status == ("rejected" if reject else "approved")
        assert (a.rejected_by if reject else a.approved_by) != a.assessor


@PROPERTY
@given(st.integers(1, MAX_VALID_DAYS), st.integers(-10, 400 * 24), st.booleans())
def test_current_exactly_until_the_valid_days_have_passed(days, hours_later, sensitive):
    a = approved(SENSITIVE if sensitive else [], valid_days=days)
    now = AT + timedelta(hours=hours_later)
    assert a.is_current(now) == (hours_later < days * 24)
    assert a.expire_if_run_out(now) == (hours_later >= days * 24)


ACTIONS = st.sampled_from(["approve", "approve_self", "reject", "expire", "supersede", "stage", "run_out"])
EDGES = {("awaiting_approval", "approved"), ("awaiting_approval", "rejected"), ("awaiting_approval", "expired"),
         ("awaiting_approval", "superseded"), ("approved", "expired"), ("approved", "superseded")}


@PROPERTY
@given(st.booleans(), st.lists(ACTIONS, max_size=6))
def test_status_moves_only_forward_and_never_back_to_standing(sensitive, actions):
    a = make(SENSITIVE if sensitive else [], valid_days=5)
    at = AT
    for action in actions:
        at += timedelta(days=1)
        before = a.status
        try:
            {"approve": lambda: a.approve(MANAGER, at), "approve_self": lambda: a.approve(ASSESSOR, at),
             "reject": lambda: a.reject(MANAGER, at, "no"), "expire": lambda: a.expire("news", at),
             "supersede": lambda: a.supersede(at), "stage": lambda: a.expire_on_stage_change("preparation", at),
             "run_out": lambda: a.expire_if_run_out(at)}[action]()
        except AssessmentRuleBroken:
            pass
        assert a.status in STATUSES
        assert a.status == before or (before, a.status) in EDGES
        assert a.approved_by != ASSESSOR
        if a.status == "approved":
            assert a.approved_at is not None and a.approved_at < a.expires_at


def test_time_zones_do_not_matter():
    a = approved(valid_days=1)
    elsewhere = timezone(timedelta(hours=5))
    assert a.is_current((AT + timedelta(hours=23)).astimezone(elsewhere))
    assert not a.is_current((AT + timedelta(hours=24)).astimezone(elsewhere))
