"""The safety gate: which meetings go ahead, the reasons it gives, and the properties that make it
safe - withdrawing an approval never opens it, a plan that provides more never closes it, and an
allowed conference always rests on a current approved assessment per participant."""
from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk_examples import AT, MANAGER, NOW_OFFSET, PIDS, PROPERTY, approved, factor, histories_st, make, stub
from mend_risk.domain.gate import GateDecision, case_clearance, check_meeting_safety
from mend_risk.domain.vocabulary import DIRECT_MEETING_KINDS, MEASURES, MEETING_KINDS

ALL_PLAN = frozenset(m for m in MEASURES if m != "indirect_only")
CS = ("co_facilitation", "separate_arrival_and_waiting")


def gate(kind, history, pids=None, plan=ALL_PLAN, now=AT, **kw) -> GateDecision:
    return check_meeting_safety(meeting_kind=kind, participant_ids=list(history) if pids is None else pids,
                                assessments=history, plan_measures=plan, now=now, **kw)


# =============================================================================================
# 1. Conference (direct)
# =============================================================================================
def test_a_conference_with_every_participant_cleared_and_the_plan_complete_goes_ahead():
    history = {"p1": [stub("p1", measures=CS, level="high", assessment_id="a1")],
               "p2": [stub("p2", assessment_id="a2")]}
    d = gate("conference", history, plan=set(CS))
    assert d.allowed
    assert d.reasons == ("participant p1: cleared by assessment a1, level high; the plan provides co-facilitation, "
                         "separate arrival and waiting rooms",
                         "participant p2: cleared by assessment a2, level low")


@pytest.mark.parametrize("p1_history, plan, reason", [
    ([], ALL_PLAN, "participant p1: no current approved risk assessment (none has been made)"),
    ([dict(status="awaiting_approval", assessment_id="a1")], ALL_PLAN,
     "participant p1: assessment awaiting a manager's approval (a1)"),
    ([dict(decision="indirect_only", measures=["indirect_only"], assessment_id="a1")], ALL_PLAN,
     "participant p1: assessment says indirect only (a1)"),
    ([dict(decision="not_suitable", measures=["indirect_only"], assessment_id="a1")], ALL_PLAN,
     "participant p1: assessment says not suitable (a1)"),
    ([dict(measures=CS)], {"co_facilitation"}, "participant p1: the plan does not provide: separate arrival and "
                                                "waiting rooms"),
    ([dict(measures=["prison_venue", "supporter_present", "co_facilitation"])], set(),
     "participant p1: the plan does not provide: co-facilitation, supporter present, prison venue"),
    ([dict(status="rejected", assessment_id="a1")], ALL_PLAN,
     "participant p1: no current approved risk assessment (the latest, a1, was rejected: no reason given)"),
    ([dict(status="superseded", assessment_id="a1")], ALL_PLAN,
     "participant p1: no current approved risk assessment (the latest, a1, is superseded)"),
    ([dict(assessed_at=AT - timedelta(days=91), assessment_id="a1")], ALL_PLAN,
     "participant p1: no current approved risk assessment (the latest, a1, ran out at 2026-06-09T10:00:00+00:00)"),
])
def test_a_conference_is_denied_naming_the_participant_and_what_is_missing(p1_history, plan, reason):
    history = {"p1": [stub("p1", **kw) for kw in p1_history], "p2": [stub("p2")]}
    d = gate("conference", history, plan=plan)
    assert d == GateDecision(False, (reason,))


def test_an_expired_assessment_gives_its_expiry_reason():
    a = approved(participant_id="p1")
    a.expire("new information: threats reported", AT + timedelta(hours=2))
    d = gate("conference", {"p1": [a]}, now=AT + timedelta(hours=3))
    assert not d.allowed and d.reasons[0].endswith("is expired: new information: threats reported)")


def test_denials_are_listed_by_participant_id_whatever_the_order_given():
    history = {"p3": [], "p1": [stub("p1", status="awaiting_approval")], "p2": [stub("p2")]}
    for order in (["p3", "p1", "p2"], ["p2", "p3", "p1", "p3"]):
        d = gate("conference", history, pids=order)
        assert not d.allowed and [r.split(":")[0] for r in d.reasons] == ["participant p1", "participant p3"]


def test_a_participant_named_without_any_history_is_denied():
    d = gate("conference", {"p1": [stub("p1")]}, pids=["p1", "p9"])
    assert d.reasons == ("participant p9: no current approved risk assessment (none has been made)",)


def test_an_assessment_filed_under_another_participant_does_not_count():
    d = gate("conference", {"p1": [stub("p2")]}, pids=["p1"])
    assert not d.allowed and "none has been made" in d.reasons[0]


def test_a_newer_assessment_awaiting_approval_blocks_beside_an_approved_one():
    history = {"p1": [stub("p1", assessment_id="old"),
                      stub("p1", status="awaiting_approval", assessed_at=AT + timedelta(days=1), assessment_id="new")]}
    d = gate("conference", history, now=AT + timedelta(days=2))
    assert d == GateDecision(False, ("participant p1: assessment awaiting a manager's approval (new)",))


def test_with_two_approved_assessments_the_strictest_decides_and_all_measures_count():
    history = {"p1": [stub("p1", measures=["co_facilitation"], assessment_id="a1"),
                      stub("p1", measures=["prison_venue"], assessment_id="a2")]}
    assert not gate("conference", history, plan={"co_facilitation"}).allowed
    assert not gate("conference", history, plan={"prison_venue"}).allowed
    assert gate("conference", history, plan={"co_facilitation", "prison_venue"}).allowed
    history["p1"].append(stub("p1", decision="indirect_only", measures=["indirect_only"], assessment_id="a3"))
    assert gate("conference", history).reasons == ("participant p1: assessment says indirect only (a3)",)


def test_an_assessment_stops_counting_the_moment_it_runs_out():
    history = {"p1": [stub("p1", valid_days=10, assessment_id="a1")]}
    end = AT + timedelta(days=10)
    just_before = end - timedelta(microseconds=1)
    assert gate("conference", history, now=just_before).allowed
    assert case_clearance(participant_ids=["p1"], assessments=history, now=just_before)["p1"][0]
    assert not gate("conference", history, now=end).allowed
    assert not case_clearance(participant_ids=["p1"], assessments=history, now=end)["p1"][0]
    barring = {"p1": [stub("p1", valid_days=10, decision="not_suitable", measures=["indirect_only"])]}
    assert not gate("preparation_visit", barring, now=just_before).allowed
    assert gate("preparation_visit", barring, now=end).allowed


def test_case_stage_when_given_counts_only_assessments_made_at_that_stage():
    history = {"p1": [stub("p1", stage="risk_and_safety", assessment_id="a1")]}
    assert gate("conference", history).allowed
    assert gate("conference", history, case_stage="risk_and_safety").allowed
    d = gate("conference", history, case_stage="intervention")
    assert d.reasons == ("participant p1: no current approved risk assessment (the latest, a1, was made at risk "
                         "and safety; the case is at intervention)",)


def test_a_real_assessment_through_the_gate():
    a = make([factor("domestic_abuse", "low")], participant_id="p1")
    history = {"p1": [a]}
    assert not gate("conference", history).allowed
    a.approve(MANAGER, AT + timedelta(hours=1))
    now = AT + timedelta(hours=2)
    assert not gate("conference", history, now=now, plan={"co_facilitation"}).allowed
    assert gate("conference", history, now=now, plan={"separate_arrival_and_waiting", "specialist_facilitator"}).allowed


# =============================================================================================
# 2. Other meeting kinds, and requests the gate refuses outright
# =============================================================================================
@pytest.mark.parametrize("kind, p1, allowed", [
    # indirect session: approved and not unsuitable; measures are not checked against a plan
    ("indirect_session", dict(decision="indirect_only", measures=["indirect_only", "prison_venue"]), True),
    ("indirect_session", dict(), True),
    ("indirect_session", dict(decision="not_suitable", measures=["indirect_only"]), False),
    ("indirect_session", dict(status="awaiting_approval"), False),
    ("indirect_session", None, False),
    # preparation visits: no assessment needed, but not while one says not suitable
    ("preparation_visit", None, True),
    ("preparation_visit", dict(status="awaiting_approval"), True),
    ("preparation_visit", dict(decision="indirect_only", measures=["indirect_only"]), True),
    ("preparation_visit", dict(decision="not_suitable", measures=["indirect_only"]), False),
    ("preparation_visit", dict(decision="not_suitable", measures=["indirect_only"], status="awaiting_approval"), False),
    ("preparation_visit", dict(decision="not_suitable", measures=["indirect_only"], status="rejected"), True),
    ("pre_prison_visit", dict(measures=["prison_venue"]), True),
    ("pre_prison_visit", None, True),
    ("pre_prison_visit", dict(decision="not_suitable", measures=["indirect_only"]), False),
])
def test_other_meeting_kinds(kind, p1, allowed):
    history = {"p1": [stub("p1", assessment_id="a1", **p1)] if p1 is not None else []}
    d = gate(kind, history, plan=set())
    assert d.allowed is allowed and len(d.reasons) == 1 and d.reasons[0].startswith("participant p1: ")
    if not allowed and p1 and p1.get("decision") == "not_suitable":
        assert d.reasons[0] == "participant p1: assessment says not suitable (a1)"


def test_supervision_has_no_participants():
    assert gate("supervision", {}, pids=[]) == GateDecision(True, ("facilitator supervision involves no participant",))
    d = gate("supervision", {"p1": [stub("p1")]}, pids=["p1"])
    assert not d.allowed and "no participant takes part" in d.reasons[0]


@pytest.mark.parametrize("kind, pids, plan, reason", [
    ("party", ["p1"], ALL_PLAN, "unknown meeting kind 'party'"),
    ("", ["p1"], ALL_PLAN, "unknown meeting kind ''"),
    ("conference", [], ALL_PLAN, "no participants named for the conference"),
    ("preparation_visit", [], ALL_PLAN, "no participants named for the preparation visit"),
    ("conference", ["p1", ""], ALL_PLAN, "a participant id is blank"),
    ("conference", ["p1"], {"co_facilitation", "armed_guard"}, "the plan names measures that do not exist: "
                                                               "armed_guard"),
    ("conference", ["p1"], {"indirect_only"}, "its plan cannot be indirect only"),
    ("conference", "p1", ALL_PLAN, "must be a list"),
])
def test_requests_refused_outright(kind, pids, plan, reason):
    d = gate(kind, {"p1": [stub("p1")]}, pids=pids, plan=plan)
    assert not d.allowed and any(reason in r for r in d.reasons), d.reasons


def test_an_indirect_session_plan_may_say_indirect_only():
    assert gate("indirect_session", {"p1": [stub("p1")]}, plan={"indirect_only"}).allowed


def test_the_gate_does_not_change_the_assessments():
    history = {"p1": [stub("p1", status="awaiting_approval")], "p2": [stub("p2")]}
    before = copy.deepcopy(history)
    for kind in MEETING_KINDS:
        gate(kind, history)
    case_clearance(participant_ids=["p1", "p2"], assessments=history, now=AT)
    assert history == before


# =============================================================================================
# 3. Case clearance
# =============================================================================================
def test_case_clearance_per_participant():
    history = {
        "p1": [stub("p1", level="medium", assessment_id="a1")],
        "p2": [stub("p2", status="awaiting_approval", assessment_id="a2")],
        "p3": [stub("p3", decision="not_suitable", measures=["indirect_only"], assessment_id="a3")],
        "p4": [stub("p4", decision="indirect_only", measures=["indirect_only"], level="high", assessment_id="a4")],
    }
    assert case_clearance(participant_ids=["p5", "p4", "p3", "p2", "p1", "p1"], assessments=history, now=AT) == {
        "p1": (True, "cleared by assessment a1, level medium"),
        "p2": (False, "assessment a2 is awaiting a manager's approval"),
        "p3": (False, "assessment a3 says not suitable"),
        "p4": (True, "cleared by assessment a4, level high"),
        "p5": (False, "no current approved risk assessment (none has been made)"),
    }


def test_case_clearance_uses_the_latest_standing_assessment_for_its_words():
    history = {"p1": [stub("p1", status="expired", assessment_id="a0", level="high"),
                      stub("p1", assessed_at=AT + timedelta(days=1), assessment_id="a1")]}
    assert case_clearance(participant_ids=["p1"], assessments=history, now=AT + timedelta(days=2)) == \
        {"p1": (True, "cleared by assessment a1, level low")}
    assert case_clearance(participant_ids=["p1"], assessments=history, now=AT + timedelta(days=2),
                          case_stage="preparation")["p1"][0] is False


# =============================================================================================
# 4. Properties
# =============================================================================================
# Histories are costly to generate: fewer examples than the rule properties, still every shape.
GATE_PROPERTY = settings(PROPERTY, max_examples=60)
KINDS = st.sampled_from(MEETING_KINDS)
PLANS = st.sets(st.sampled_from(sorted(ALL_PLAN)))
NOW = NOW_OFFSET.map(lambda d: AT + timedelta(days=d))
PID_LISTS = st.lists(st.sampled_from(PIDS), min_size=1, max_size=3)


def _all(history):
    return [(pid, i) for pid, found in history.items() for i in range(len(found))]


@GATE_PROPERTY
@given(histories_st(crowded=True), KINDS, PID_LISTS, PLANS, NOW, st.data())
def test_withdrawing_an_approval_never_turns_a_deny_into_an_allow(history, kind, pids, plan, now, data):
    approvals = [(pid, i) for pid, i in _all(history) if history[pid][i].status == "approved"]
    if not approvals:
        return
    pid, i = data.draw(st.sampled_from(approvals))
    withdrawn = copy.deepcopy(history)
    a = withdrawn[pid][i]
    a.status, a.approved_by, a.approved_at = "awaiting_approval", None, None
    for asked in (pids, [pid]):
        for meeting in (kind, "conference"):
            before = gate(meeting, history, pids=asked, plan=plan, now=now)
            assert before.allowed or not gate(meeting, withdrawn, pids=asked, plan=plan, now=now).allowed
    cleared_before = case_clearance(participant_ids=pids, assessments=history, now=now)
    cleared_after = case_clearance(participant_ids=pids, assessments=withdrawn, now=now)
    assert all(cleared_before[p][0] or not cleared_after[p][0] for p in cleared_before)


@GATE_PROPERTY
@given(histories_st(well_formed=True), st.sampled_from(["conference", "indirect_session"]), PID_LISTS, PLANS, NOW,
       st.data())
def test_deleting_an_assessment_never_turns_a_deny_into_an_allow(history, kind, pids, plan, now, data):
    """For the meetings that need an assessment, on histories the service keeps (a new
    assessment supersedes the old, so at most one stands per participant)."""
    everything = _all(history)
    if not everything:
        return
    pid, i = data.draw(st.sampled_from(everything))
    fewer = copy.deepcopy(history)
    del fewer[pid][i]
    for asked in (pids, [pid]):
        before = gate(kind, history, pids=asked, plan=plan, now=now)
        assert before.allowed or not gate(kind, fewer, pids=asked, plan=plan, now=now).allowed


def test_deleting_the_assessment_that_bars_a_preparation_visit_allows_it_again():
    """The documented exception: a preparation visit is how an assessment gets made, so with no
    assessment at all a visit may go ahead."""
    history = {"p1": [stub("p1", decision="not_suitable", measures=["indirect_only"])]}
    assert not gate("preparation_visit", history).allowed
    assert gate("preparation_visit", {"p1": []}).allowed


@GATE_PROPERTY
@given(histories_st(), KINDS, PID_LISTS, PLANS, PLANS, NOW)
def test_a_plan_that_provides_more_never_turns_an_allow_into_a_deny(history, kind, pids, plan, more, now):
    if gate(kind, history, pids=pids, plan=plan, now=now).allowed:
        assert gate(kind, history, pids=pids, plan=plan | more, now=now).allowed


def _direct_meeting_safe(history, pid, plan, now) -> bool:
    """The design's invariant, stated independently of the gate's code."""
    mine = [a for a in history.get(pid, []) if a.participant_id == pid]
    current = [a for a in mine if a.is_current(now)]
    pending = [a for a in mine if a.status == "awaiting_approval" and now < a.expires_at]
    return bool(current) and not pending and all(
        a.allows_direct_contact(now) and set(a.conclusion.measures) <= plan for a in current)


@GATE_PROPERTY
@given(histories_st(crowded=True), PID_LISTS, PLANS, NOW)
def test_an_allowed_conference_rests_on_current_approved_assessments(history, pids, plan, now):
    """No direct meeting unless every participant has a current approved assessment allowing
    direct contact whose measures the plan provides, and none of their assessments still
    standing says otherwise or awaits approval. Checked for each participant alone and together."""
    for pid in PIDS:
        assert gate("conference", history, pids=[pid], plan=plan, now=now).allowed == \
            _direct_meeting_safe(history, pid, plan, now)
    d = gate("conference", history, pids=pids, plan=plan, now=now)
    assert d.allowed == all(_direct_meeting_safe(history, pid, plan, now) for pid in pids)
    if not d.allowed:
        assert len(d.reasons) == len(set(d.reasons)) >= 1
        named = [r.split(":")[0].removeprefix("participant ") for r in d.reasons]
        assert named == sorted(named)


@GATE_PROPERTY
@given(histories_st(crowded=True), PID_LISTS, NOW)
def test_case_clearance_agrees_with_the_gate_for_indirect_sessions(history, pids, now):
    cleared = case_clearance(participant_ids=pids, assessments=history, now=now)
    assert sorted(cleared) == sorted(set(pids))
    assert gate("indirect_session", history, pids=pids, plan=set(), now=now).allowed == \
        all(ok for ok, _ in cleared.values())
    for pid in PIDS:
        # independently: approved and current, nothing standing awaits approval or says not suitable
        mine = [a for a in history[pid] if a.participant_id == pid]
        standing = [a for a in mine if a.live and now < a.expires_at]
        expected = bool(standing) and all(a.is_current(now) and a.conclusion.decision != "not_suitable"
                                          for a in standing)
        assert case_clearance(participant_ids=[pid], assessments=history, now=now)[pid][0] == expected


@GATE_PROPERTY
@given(histories_st(), KINDS, PID_LISTS, PLANS, NOW)
def test_the_answer_does_not_depend_on_order(history, kind, pids, plan, now):
    turned = {pid: found[::-1] for pid, found in reversed(list(history.items()))}
    assert gate(kind, history, pids=pids, plan=plan, now=now) == gate(kind, turned, pids=pids[::-1], plan=plan, now=now)


def test_direct_meeting_kinds_are_meeting_kinds():
    assert set(DIRECT_MEETING_KINDS) <= set(MEETING_KINDS)
