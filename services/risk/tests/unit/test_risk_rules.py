"""The risk rules: the shipped data read table by table, the combination, level, offence and
participant rules, the reasons behind every conclusion, the properties that make the rules safe
to extend (one more risk never makes an assessment less cautious), and the checks that refuse
rule data that cannot be applied safely."""
from __future__ import annotations

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from risk_examples import PROPERTY, RULES, factor, factors_st, measures, offence_flags_st
from mend_risk.domain.rules import (DEFAULT_RULES_PATH, Conclusion, Factor, RuleDataError, RuleSet, current_rules,
                                    load_rules)
from mend_risk.domain.vocabulary import (DECISIONS, FACTOR_KINDS, FACTOR_LABELS, LEVELS, MEASURES,
                                         PARTICIPANT_ROLES, SEVERITIES)

D, IND, NS = "direct_allowed", "indirect_only", "not_suitable"
SHIPPED = json.loads(DEFAULT_RULES_PATH.read_text())


def data(**changes) -> dict:
    """A copy of the shipped rule data."""
    copied = copy.deepcopy(SHIPPED)
    copied.update(changes)
    return copied


def evaluate(*factors, **kw) -> Conclusion:
    return RULES.evaluate(list(factors), **kw)


def rank(order, word) -> int:
    return order.index(word)


def check_reasons(c: Conclusion) -> None:
    """Every conclusion has at least one reason and every reason belongs to a conclusion reached."""
    assert c.reasons_for(f"level:{c.level}")
    assert c.reasons_for(f"decision:{c.decision}")
    for m in c.measures:
        assert c.reasons_for(f"measure:{m}"), m
    assert c.reasons_for("approval:required" if c.needs_approval else "approval:not_required")
    reached = {f"level:{c.level}", f"decision:{c.decision}", "approval:required" if c.needs_approval
               else "approval:not_required", *(f"measure:{m}" for m in c.measures)}
    ids = set(RULES.rule_ids())
    for r in c.reasons:
        assert r.conclusion in reached, r
        assert r.rule_id in ids, r
        assert r.text.strip().endswith(".") and len(r.text) > 20, r


# =============================================================================================
# 1. The shipped data
# =============================================================================================
def test_the_shipped_rules_load_and_are_versioned():
    rules = load_rules()
    assert rules.version == "risk-rules-v1" and rules.description
    assert current_rules() is current_rules()
    assert rules.to_dict() == SHIPPED


def test_to_dict_is_a_copy_a_reader_cannot_change_the_rules():
    rules = load_rules()
    d = rules.to_dict()
    d["factors"]["domestic_abuse"]["high"]["level"] = "low"
    d["version"] = "tampered"
    assert rules.to_dict() == SHIPPED
    assert rules.evaluate([factor("domestic_abuse", "high")]).level == "very_high"


def test_every_factor_kind_has_a_rule_and_a_reason_id_at_every_severity():
    ids = RULES.rule_ids()
    assert len(ids) == len(set(ids))
    for kind in FACTOR_KINDS:
        for severity in SEVERITIES:
            assert f"factors.{kind}.{severity}" in ids


def test_no_factors_low_direct_no_measures_no_approval_and_says_so():
    c = evaluate()
    assert (c.level, c.measures, c.decision, c.needs_approval, c.rule_version) == \
        ("low", (), D, False, "risk-rules-v1")
    assert [r.conclusion for r in c.reasons] == ["level:low", "decision:direct_allowed", "approval:not_required"]
    assert all("No risk factors were recorded" in r.text for r in c.reasons)
    check_reasons(c)


# =============================================================================================
# 2. One factor at a time: the whole table
# =============================================================================================
# kind -> severity -> (level, decision, measures, needs approval), written out from the framework
# the service agreed, independently of the JSON: a change to the data must change this table.
SINGLE = {
    "physical_harm_to_participant": {"low": ("low", D, "", False), "medium": ("medium", D, "CS", False),
                                     "high": ("high", D, "CSX", True)},
    "physical_harm_from_participant": {"low": ("low", D, "", False), "medium": ("medium", D, "CS", False),
                                       "high": ("high", D, "CSX", True)},
    "emotional_harm": {"low": ("low", D, "", False), "medium": ("medium", D, "P", False),
                       "high": ("high", IND, "CSPXI", True)},
    "vulnerability_age": {"low": ("low", D, "P", False), "medium": ("medium", D, "P", False),
                          "high": ("high", D, "CSPX", True)},
    "vulnerability_mental_health": {"low": ("low", D, "", False), "medium": ("medium", D, "P", False),
                                    "high": ("high", D, "CSPX", True)},
    "vulnerability_learning_disability": {"low": ("low", D, "", False), "medium": ("medium", D, "P", False),
                                          "high": ("high", D, "CSPX", True)},
    "vulnerability_substance_misuse": {"low": ("low", D, "", False), "medium": ("medium", D, "C", False),
                                       "high": ("high", IND, "CSI", True)},
    "safeguarding_child": {"low": ("medium", D, "", True), "medium": ("medium", D, "C", True),
                           "high": ("high", IND, "CSXI", True)},
    "safeguarding_adult": {"low": ("low", D, "", False), "medium": ("medium", D, "P", True),
                           "high": ("high", IND, "CSPXI", True)},
    "domestic_abuse": {"low": ("medium", D, "SX", True), "medium": ("high", D, "CSX", True),
                       "high": ("very_high", IND, "CSXI", True)},
    "sexual_offence": {"low": ("medium", D, "X", True), "medium": ("high", D, "CSX", True),
                       "high": ("very_high", IND, "CSXI", True)},
    "hate_crime": {"low": ("low", D, "C", True), "medium": ("medium", D, "CS", True),
                   "high": ("high", D, "CSX", True)},
    "stalking_or_harassment": {"low": ("medium", D, "S", True), "medium": ("high", D, "CS", True),
                               "high": ("very_high", IND, "CSXI", True)},
    "serious_violence": {"low": ("medium", D, "C", False), "medium": ("high", D, "CS", True),
                         "high": ("very_high", IND, "CSXI", True)},
    "power_imbalance": {"low": ("low", D, "", False), "medium": ("medium", D, "CP", False),
                        "high": ("high", IND, "CSPI", True)},
    "low_acknowledgement": {"low": ("low", D, "", False), "medium": ("medium", D, "", False),
                            "high": ("high", NS, "CSI", True)},
    "low_remorse": {"low": ("low", D, "", False), "medium": ("medium", D, "", False),
                    "high": ("high", IND, "CSI", True)},
    "low_motivation": {"low": ("low", D, "", False), "medium": ("low", D, "", False),
                       "high": ("medium", IND, "I", False)},
    "protective_order": {"low": ("medium", IND, "I", False), "medium": ("high", IND, "CSI", True),
                         "high": ("high", NS, "CSI", True)},
    "licence_or_bail_conditions": {"low": ("low", D, "", False), "medium": ("medium", D, "", False),
                                   "high": ("high", IND, "CSI", True)},
    "prison_conditions": {"low": ("low", D, "V", False), "medium": ("medium", D, "CV", False),
                          "high": ("high", IND, "CSVI", True)},
    "prison_security": {"low": ("low", D, "V", False), "medium": ("medium", D, "CV", False),
                        "high": ("high", D, "CSVX", True)},
}
# Sensitive (approval needed whatever the level) - the rest need approval only at high and above.
SENSITIVE = {("safeguarding_child", s) for s in SEVERITIES} | {("safeguarding_adult", s) for s in ("medium", "high")} \
    | {(k, s) for k in ("domestic_abuse", "sexual_offence", "hate_crime", "stalking_or_harassment") for s in SEVERITIES} \
    | {("serious_violence", "high"), ("physical_harm_from_participant", "high")}


def test_the_table_covers_every_factor_and_severity():
    assert set(SINGLE) == set(FACTOR_KINDS)
    assert all(set(row) == set(SEVERITIES) for row in SINGLE.values())


@pytest.mark.parametrize("kind, severity", [(k, s) for k in FACTOR_KINDS for s in SEVERITIES])
def test_one_factor_alone(kind, severity):
    level, decision, letters, approval = SINGLE[kind][severity]
    c = evaluate(factor(kind, severity))
    assert (c.level, c.decision, c.measures, c.needs_approval) == (level, decision, measures(letters), approval)
    check_reasons(c)
    rule = f"factors.{kind}.{severity}"
    # The factor's own rule is named wherever it decided the outcome, in words naming the factor.
    own = [r for r in c.reasons if r.rule_id == rule]
    assert own and all(r.text.startswith(f"{FACTOR_LABELS[kind]}: {severity} (evidence: police)") for r in own)
    assert any(r.conclusion == f"level:{level}" for r in own)
    sensitive_reason = any(r.conclusion == "approval:required" for r in own)
    assert sensitive_reason == ((kind, severity) in SENSITIVE)
    level_reason = any(r.rule_id == "approval.levels" for r in c.reasons)
    assert level_reason == (level in ("high", "very_high"))


@pytest.mark.parametrize("kind, severity, decision, why", [
    ("low_acknowledgement", "high", NS, "acknowledge the harm"),
    ("protective_order", "high", NS, "court varies"),
    ("protective_order", "low", IND, "unless the court varies"),
    ("emotional_harm", "high", IND, "re-traumatise"),
    ("domestic_abuse", "high", IND, "specialist facilitator"),
])
def test_decisions_are_explained_in_the_words_of_the_rule(kind, severity, decision, why):
    c = evaluate(factor(kind, severity))
    texts = [r.text for r in c.reasons_for(f"decision:{decision}") if r.rule_id == f"factors.{kind}.{severity}"]
    assert texts and why in texts[0]


def test_measures_for_the_prison_and_for_youth():
    assert "prison_venue" in evaluate(factor("prison_security", "low")).measures
    youth = evaluate(is_youth=True)
    assert youth.measures == ("supporter_present",) and not youth.needs_approval and youth.level == "low"
    assert [r.rule_id for r in youth.reasons_for("measure:supporter_present")] == ["participant.youth"]
    assert "under 18" in youth.reasons_for("measure:supporter_present")[0].text
    assert evaluate(is_youth=False).measures == ()


# =============================================================================================
# 3. Combinations, levels, sources
# =============================================================================================
@pytest.mark.parametrize("factors, level, rule", [
    # three different factors at medium or above raise the level to at least high
    ([("physical_harm_to_participant", "medium"), ("emotional_harm", "medium"), ("low_remorse", "medium")],
     "high", "combinations.three_or_more_at_medium"),
    ([("physical_harm_to_participant", "medium"), ("emotional_harm", "medium"), ("low_remorse", "low")],
     "medium", None),
    ([("physical_harm_to_participant", "medium"), ("emotional_harm", "medium")], "medium", None),
    # two high -> very high
    ([("physical_harm_to_participant", "high"), ("vulnerability_age", "high")],
     "very_high", "combinations.two_or_more_at_high"),
    ([("physical_harm_to_participant", "high"), ("vulnerability_age", "medium")], "high", None),
    # domestic abuse with stalking, both at medium or above
    ([("domestic_abuse", "medium"), ("stalking_or_harassment", "medium")],
     "very_high", "combinations.domestic_abuse_with_stalking"),
    ([("domestic_abuse", "low"), ("stalking_or_harassment", "medium")], "high", None),
    # two kinds of vulnerability
    ([("vulnerability_age", "medium"), ("vulnerability_mental_health", "medium")],
     "high", "combinations.several_vulnerabilities"),
    ([("vulnerability_age", "medium"), ("vulnerability_mental_health", "low")], "medium", None),
])
def test_combination_rules(factors, level, rule):
    c = evaluate(*(factor(k, s) for k, s in factors))
    assert c.level == level
    fired = {r.rule_id for r in c.reasons if r.rule_id.startswith("combinations.")}
    assert fired == ({rule} if rule else set())
    if rule:
        assert rule in {r.rule_id for r in c.reasons_for(f"level:{level}")}
    check_reasons(c)


def test_the_same_factor_from_three_sources_is_one_factor():
    c = evaluate(*(factor("emotional_harm", "medium", source) for source in ("police", "probation", "self_report")))
    assert c.level == "medium"
    assert c.reasons_for("level:medium")[0].text.startswith(
        "Risk of emotional harm or re-traumatisation: medium (evidence: police, probation, self-report)")


def test_when_sources_disagree_the_strongest_severity_counts_and_its_sources_are_named():
    c = evaluate(factor("stalking_or_harassment", "low", "self_report"),
                 factor("stalking_or_harassment", "high", "victim_support"))
    assert c.level == "very_high" and c.decision == IND
    texts = [r.text for r in c.reasons if r.rule_id == "factors.stalking_or_harassment.high"]
    assert texts and all("(evidence: Victim Support)" in t for t in texts)
    assert not any(r.rule_id == "factors.stalking_or_harassment.low" for r in c.reasons)


@pytest.mark.parametrize("kind, severity, level_rules", [
    ("serious_violence", "medium", ["levels.high"]),
    ("domestic_abuse", "high", ["levels.high", "levels.very_high"]),
    ("emotional_harm", "medium", []),
])
def test_level_rules_apply_at_their_level_and_above(kind, severity, level_rules):
    c = evaluate(factor(kind, severity))
    fired = sorted({r.rule_id for r in c.reasons if r.rule_id.startswith("levels.")})
    assert fired == level_rules
    if "levels.high" in level_rules:
        assert "levels.high" in {r.rule_id for r in c.reasons_for("measure:separate_arrival_and_waiting")}
    if "levels.very_high" in level_rules:
        assert "levels.very_high" in {r.rule_id for r in c.reasons_for(f"decision:{c.decision}")}
        assert "levels.very_high" in {r.rule_id for r in c.reasons_for("measure:specialist_facilitator")}


def test_very_high_through_a_combination_forces_indirect_contact():
    c = evaluate(factor("prison_security", "high"), factor("physical_harm_to_participant", "high"))
    assert c.level == "very_high" and c.decision == IND
    assert {"indirect_only", "specialist_facilitator"} <= set(c.measures)
    assert [r.rule_id for r in c.reasons_for("decision:indirect_only")] == ["levels.very_high"]
    assert [r.rule_id for r in c.reasons_for("measure:indirect_only")] == ["decisions.indirect_only"]


def test_not_suitable_is_stricter_than_indirect_and_wins():
    c = evaluate(factor("low_acknowledgement", "high"), factor("protective_order", "low"))
    assert c.decision == NS
    assert [r.rule_id for r in c.reasons_for("decision:not_suitable")] == ["factors.low_acknowledgement.high"]
    assert not c.reasons_for("decision:indirect_only")


# =============================================================================================
# 4. Offence flags
# =============================================================================================
@pytest.mark.parametrize("flag, level, letters, rule", [
    ("domestic_abuse", "medium", "X", "offence_flags.domestic_abuse"),
    ("sexual_offence", "medium", "X", "offence_flags.sexual_offence"),
    ("hate_crime", "low", "", "offence_flags.hate_crime"),
    ("serious_violence", "low", "C", "offence_flags.serious_violence"),
    ("stalking_or_harassment", "low", "S", "offence_flags.stalking_or_harassment"),
    ("most_serious", "low", "", "offence_flags.most_serious"),
    ("arson", "low", "", "unrecognised_offence_flag"),
])
def test_offence_flags_make_the_case_sensitive(flag, level, letters, rule):
    c = evaluate(offence_flags=[flag, flag])
    assert (c.level, c.measures, c.decision, c.needs_approval) == (level, measures(letters), D, True)
    approvals = c.reasons_for("approval:required")
    assert [r.rule_id for r in approvals] == [rule]          # named once although given twice
    assert approvals[0].text.startswith("The offence is flagged as")
    check_reasons(c)


def test_an_unknown_flag_is_explained_as_unknown():
    (reason,) = evaluate(offence_flags=["arson"]).reasons_for("approval:required")
    assert "'arson'" in reason.text and "do not know this flag" in reason.text


def test_a_low_assessment_needs_no_approval_and_says_why():
    c = evaluate(factor("emotional_harm", "medium"))
    assert not c.needs_approval
    (reason,) = c.reasons_for("approval:not_required")
    assert reason.text.startswith("The level is medium.")


# =============================================================================================
# 5. Bad input
# =============================================================================================
@pytest.mark.parametrize("factors, kw, named", [
    ([Factor("flood", "high", "police")], {}, "factors[0].kind: 'flood'"),
    ([factor("hate_crime"), Factor("hate_crime", "extreme", "police")], {}, "factors[1].severity: 'extreme'"),
    ([Factor("hate_crime", "low", "neighbour")], {}, "factors[0].source: 'neighbour'"),
    (["hate_crime"], {}, "factors[0] is not a factor"),
    ([], {"participant_role": "witness"}, "participant_role: 'witness'"),
    ([], {"offence_flags": "domestic_abuse"}, "offence_flags"),
    ([], {"offence_flags": [""]}, "offence_flags"),
])
def test_bad_input_is_refused_naming_the_field(factors, kw, named):
    with pytest.raises(ValueError) as info:
        RULES.evaluate(factors, **kw)
    assert named in str(info.value)


@pytest.mark.parametrize("role", PARTICIPANT_ROLES)
def test_every_participant_role_is_accepted(role):
    assert RULES.evaluate([], participant_role=role).level == "low"


# =============================================================================================
# 6. Properties
# =============================================================================================
def _at_least_as_cautious(after: Conclusion, before: Conclusion) -> None:
    assert rank(LEVELS, after.level) >= rank(LEVELS, before.level)
    assert rank(DECISIONS, after.decision) >= rank(DECISIONS, before.decision)
    assert set(before.measures) <= set(after.measures)
    assert after.needs_approval or not before.needs_approval


@PROPERTY
@given(st.lists(factors_st, max_size=6), factors_st, offence_flags_st, st.booleans(),
       st.sampled_from(PARTICIPANT_ROLES))
def test_adding_a_factor_never_makes_the_assessment_less_cautious(factors, extra, flags, youth, role):
    kw = dict(offence_flags=flags, is_youth=youth, participant_role=role)
    before = RULES.evaluate(factors, **kw)
    after = RULES.evaluate(factors + [extra], **kw)
    _at_least_as_cautious(after, before)


@PROPERTY
@given(st.lists(factors_st, max_size=6), offence_flags_st, st.sampled_from(["domestic_abuse", "arson", "hate_crime"]),
       st.booleans())
def test_adding_an_offence_flag_or_youth_never_makes_it_less_cautious(factors, flags, flag, youth):
    before = RULES.evaluate(factors, offence_flags=flags, is_youth=False)
    _at_least_as_cautious(RULES.evaluate(factors, offence_flags=flags + [flag], is_youth=youth), before)
    assert RULES.evaluate(factors, offence_flags=flags + [flag]).needs_approval


@PROPERTY
@given(st.lists(factors_st, max_size=6), st.sampled_from(FACTOR_KINDS), st.sampled_from(SEVERITIES[:-1]))
def test_raising_a_factors_severity_never_makes_it_less_cautious(factors, kind, severity):
    stronger = SEVERITIES[SEVERITIES.index(severity) + 1]
    before = RULES.evaluate(factors + [factor(kind, severity)])
    _at_least_as_cautious(RULES.evaluate(factors + [factor(kind, stronger)]), before)


@PROPERTY
@given(st.lists(factors_st, max_size=7), offence_flags_st, st.booleans())
def test_every_conclusion_is_explained_and_consistent(factors, flags, youth):
    c = RULES.evaluate(factors, offence_flags=flags, is_youth=youth)
    check_reasons(c)
    assert c.measures == tuple(sorted(set(c.measures))) and set(c.measures) <= set(MEASURES)
    # indirect contact only is a measure exactly when a direct meeting is ruled out
    assert ("indirect_only" in c.measures) == (c.decision != D)
    # approval: a sensitive factor or any offence flag, or a level of high or above; nothing else
    assert c.needs_approval == (c.level in ("high", "very_high") or bool(flags)
                                or any((f.kind, f.severity) in SENSITIVE for f in factors))
    if c.level == "very_high":
        assert c.decision != D
    # the order the factors and flags were recorded in changes nothing
    assert RULES.evaluate(factors[1:] + factors[:1], offence_flags=list(reversed(flags)), is_youth=youth) == c


# =============================================================================================
# 7. Rule data that cannot be applied safely is refused
# =============================================================================================
def problems_of(d) -> list[tuple[str, str]]:
    with pytest.raises(RuleDataError) as info:
        RuleSet(d, source="test.json")
    assert isinstance(info.value, ValueError) and str(info.value).startswith("risk rules test.json: ")
    return info.value.problems


def _set(d, path, value):
    *head, last = path.split(".")
    target = d
    for key in head:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return d


_DELETE = object()


@pytest.mark.parametrize("path, value, where, problem", [
    ("version", _DELETE, "version", "is missing"),
    ("version", "", "version", "non-empty"),
    ("version", 1, "version", "non-empty"),
    ("version", "v" * 41, "version", "at most 40"),
    ("colour", "blue", "colour", "unknown key"),
    ("factors.flood", {"low": {"level": "low", "why": "x"}}, "factors.flood", "unknown factor kind"),
    ("factors.hate_crime", _DELETE, "factors.hate_crime", "is missing"),
    ("factors.hate_crime.medium", _DELETE, "factors.hate_crime.medium", "is missing"),
    ("factors.hate_crime.extreme", {"level": "high", "why": "x"}, "factors.hate_crime.extreme", "unknown severity"),
    ("factors.hate_crime.high.level", "extreme", "factors.hate_crime.high.level", "'extreme' is not one of low"),
    ("factors.hate_crime.high.level", _DELETE, "factors.hate_crime.high.level", "is missing"),
    ("factors.hate_crime.high.measures", ["blindfold"], "factors.hate_crime.high.measures", "'blindfold'"),
    ("factors.hate_crime.high.measures", "co_facilitation", "factors.hate_crime.high.measures", "must be a list"),
    ("factors.hate_crime.high.decision", "maybe", "factors.hate_crime.high.decision", "'maybe' is not one of"),
    ("factors.hate_crime.high.why", "", "factors.hate_crime.high.why", "non-empty"),
    ("factors.hate_crime.high.sensitive", "yes", "factors.hate_crime.high.sensitive", "true or false"),
    ("factors.hate_crime.high.colour", "red", "factors.hate_crime.high.colour", "unknown key"),
    # a stronger severity may never ask less than a weaker one
    ("factors.hate_crime.high.level", "low", "factors.hate_crime.high", "lower than medium"),
    ("factors.hate_crime.high.measures", ["co_facilitation"], "factors.hate_crime.high",
     "drops separate_arrival_and_waiting"),
    ("factors.hate_crime.high.sensitive", False, "factors.hate_crime.high", "not sensitive although medium"),
    ("factors.low_remorse.medium.decision", "not_suitable", "factors.low_remorse.high", "less strict"),
    # indirect contact only cannot sit beside a direct meeting
    ("factors.hate_crime.high.measures", ["co_facilitation", "separate_arrival_and_waiting", "specialist_facilitator",
                                          "indirect_only"], "factors.hate_crime.high.measures", "indirect_only"),
    # policy floors
    ("factors.domestic_abuse.low.sensitive", False, "factors.domestic_abuse.low.sensitive", "must be true"),
    ("offence_flags.sexual_offence.sensitive", False, "offence_flags.sexual_offence.sensitive", "must be true"),
    ("unrecognised_offence_flag.sensitive", False, "unrecognised_offence_flag.sensitive", "must be true"),
    ("approval.levels", ["very_high"], "approval.levels", "every level from high"),
    ("approval.levels", [], "approval.levels", "every level from high"),
    ("approval.levels", ["medium", "very_high"], "approval.levels", "every level from medium"),
    ("approval.levels", ["high", "very_high", "huge"], "approval.levels", "'huge'"),
    ("approval.why_level", _DELETE, "approval.why_level", "is missing"),
    # other sections
    ("levels.high.level", "very_high", "levels.high.level", "unknown key"),
    ("levels.extreme", {"measures": [], "why": "x"}, "levels.extreme", "unknown level"),
    ("decisions.indirect_only.decision", "not_suitable", "decisions.indirect_only.decision", "unknown key"),
    ("decisions.indirect_only.measures", ["gloves"], "decisions.indirect_only.measures", "'gloves'"),
    ("decisions.indirect_only.measures", [], "decisions.indirect_only.measures", "must list indirect_only"),
    ("decisions", _DELETE, "decisions.indirect_only.measures", "must list indirect_only"),
    ("participant.elderly", {"measures": [], "why": "x"}, "participant.elderly", "unknown key"),
    ("combinations.two_or_more_at_high.kinds", ["flood"], "combinations.two_or_more_at_high.kinds", "'flood'"),
    ("combinations.two_or_more_at_high.count_at_least", 0, "combinations.two_or_more_at_high.count_at_least",
     "whole number"),
    ("combinations.domestic_abuse_with_stalking.count_at_least", 3,
     "combinations.domestic_abuse_with_stalking.count_at_least", "from 1 to 2"),
    ("combinations.two_or_more_at_high.severity_at_least", "huge",
     "combinations.two_or_more_at_high.severity_at_least", "'huge'"),
    ("combinations.two_or_more_at_high.level", _DELETE, "combinations.two_or_more_at_high", "does nothing"),
    ("baseline.level", "none", "baseline.level", "'none'"),
])
def test_bad_rule_data_is_refused_naming_where_and_what(path, value, where, problem):
    found = problems_of(_set(data(), path, value))
    assert any(w == where and problem in p for w, p in found), found


def test_every_problem_is_reported_at_once():
    d = data()
    d["factors"]["hate_crime"]["high"]["level"] = "extreme"
    d["levels"]["very_high"]["decision"] = "sometimes"
    del d["version"]
    wheres = {w for w, _ in problems_of(d)}
    assert {"factors.hate_crime.high.level", "levels.very_high.decision", "version"} <= wheres


def test_a_document_that_is_not_an_object_is_refused():
    assert problems_of([1, 2])[0] == ("(the document)", "must be an object")


def test_the_shipped_data_passes_and_a_minimal_edit_still_loads():
    d = data(version="risk-rules-v2")
    d["factors"]["hate_crime"]["low"]["level"] = "medium"
    rules = RuleSet(d)
    assert rules.version == "risk-rules-v2"
    assert rules.evaluate([factor("hate_crime", "low")]).level == "medium"
    assert rules.evaluate([factor("hate_crime", "low")]).rule_version == "risk-rules-v2"


def test_loading_a_file_names_the_file(tmp_path):
    path = tmp_path / "rules.json"
    d = data()
    d["factors"]["hate_crime"]["high"]["measures"] = ["blindfold"]
    path.write_text(json.dumps(d))
    with pytest.raises(RuleDataError) as info:
        load_rules(path)
    assert str(path) in str(info.value) and "factors.hate_crime.high.measures" in str(info.value)
    assert info.value.source == str(path)


@pytest.mark.parametrize("text, problem", [
    ('{"version": "v", ', "is not valid JSON"),
    ('{"version": "a", "version": "b"}', "appears twice"),
])
def test_a_file_that_is_not_good_json_is_refused(tmp_path, text, problem):
    path = tmp_path / "rules.json"
    path.write_text(text)
    with pytest.raises(RuleDataError) as info:
        load_rules(path)
    assert problem in str(info.value) and str(path) in str(info.value)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(RuleDataError) as info:
        load_rules(tmp_path / "none.json")
    assert "cannot be read" in str(info.value)


def test_a_duplicated_rule_in_the_shipped_text_would_be_caught(tmp_path):
    text = DEFAULT_RULES_PATH.read_text()
    twice = text.replace('"hate_crime": {', '"hate_crime": {"low": {"level": "low", "why": "x."},', 1)
    path = tmp_path / "rules.json"
    path.write_text(twice)
    with pytest.raises(RuleDataError) as info:
        load_rules(path)
    assert ("low", "appears twice in the same object") in info.value.problems


def _paths(node, prefix=()):
    yield prefix
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _paths(child, prefix + (key,))


PATHS = [p for p in _paths(SHIPPED) if p]
WORDS = st.sampled_from(["low", "medium", "high", "very_high", "direct_allowed", "indirect_only", "not_suitable",
                         "co_facilitation", "prison_venue", "any", "", "x"])
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-1, 5) | WORDS,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(WORDS, inner, max_size=2),
                           max_leaves=4)


@PROPERTY
@given(st.sampled_from(PATHS), JSON_VALUES | st.just(_DELETE), st.lists(factors_st, max_size=5), factors_st)
def test_any_edit_of_the_data_loads_safely_or_is_refused_never_crashes(path, value, factors, extra):
    """Whatever a manager's edit does to the file, the loader either refuses it with a
    RuleDataError or the rules it accepts keep every safety property above."""
    d = data()
    target = d
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    try:
        rules = RuleSet(d)
    except RuleDataError:
        return
    before = rules.evaluate(factors)
    _at_least_as_cautious(rules.evaluate(factors + [extra]), before)
    assert ("indirect_only" in before.measures) == (before.decision != D)
    if before.level in ("high", "very_high") or any(f.kind in ("domestic_abuse", "sexual_offence") for f in factors):
        assert before.needs_approval
