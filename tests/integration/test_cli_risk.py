"""The `mend risk` commands, run through the CLI's main() against a live region: a coordinator
assesses a case's participants, a manager approves what needs four eyes, the safety gate answers
allow or deny with its reasons and exit status, and refusals are explained."""
from __future__ import annotations

import json
import uuid

from mend_cli.main import GATE_DENIED_EXIT
from tests.support.case_flow import Cases, opened_case, parties, to_risk_and_safety
from tests.support.cli import StaffCli


def _case_at_risk_and_safety(tenant) -> tuple[str, str, str]:
    """A new case at risk_and_safety: (case id, the victim's participant id, the responsible person's)."""
    _, case_id = opened_case(tenant)
    people = parties(to_risk_and_safety(Cases(tenant), case_id))
    return case_id, people["victim"], people["responsible_person"]


def Cli(tenant, capsys, *roles: str, subject: str = "coord-cli") -> StaffCli:
    return StaffCli(tenant, capsys, "risk", "risk", *roles, subject=subject)


def test_an_assessment_is_made_reviewed_and_lapses_from_the_command_line(tenant, capsys):
    case_id, victim, responsible = _case_at_risk_and_safety(tenant)
    assessor = Cli(tenant, capsys)

    # A plain assessment: the conclusion and each reason, approved by rule.
    out = assessor.ok("assess", case_id, victim, "--factor", "emotional_harm:medium:victim_support:anxious: about it")
    assert f"participant {victim}" in out
    assert "level:      medium" in out and "decision:   direct_allowed" in out
    assert "measures:   supporter_present" in out and "status:     approved by rule:" in out
    assert "current:    yes" in out
    assert "emotional_harm medium (victim_support): anxious: about it" in out       # notes keep their colons
    assert "level:medium  [factors.emotional_harm.medium]" in out and "decision:direct_allowed" in out
    plain_id = out.split()[1]

    # A sensitive one waits for a manager; the assessor cannot approve it, even holding the manager role.
    sensitive = json.loads(assessor.ok("assess", case_id, responsible, "--factor", "domestic_abuse:medium:police",
                                       "--json"))
    assert sensitive["status"] == "awaiting_approval" and sensitive["needs_approval"] and not sensitive.get("current")
    shown = assessor.ok("show", sensitive["assessment_id"])
    assert "status:     awaiting_approval" in shown and "level:      high" in shown and "approval:required" in shown
    assert "domestic_abuse medium (police)" in shown and "specialist_facilitator" in shown

    code, _, err = assessor("approve", sensitive["assessment_id"])
    assert code == 1 and "PERMISSION_DENIED" in err
    code, _, err = Cli(tenant, capsys, "coordinator", "manager")("approve", sensitive["assessment_id"])
    assert code == 1 and "FAILED_PRECONDITION" in err and "assessor" in err
    manager = Cli(tenant, capsys, "manager", subject="mgr-cli")
    code, _, err = manager("approve", sensitive["assessment_id"], "--expected-version",
                           str(sensitive["version"] + 5))
    assert code == 1 and "ABORTED" in err
    out = manager.ok("approve", sensitive["assessment_id"], "--expected-version", str(sensitive["version"]))
    assert "status:     approved by mgr-cli" in out and "current:    yes" in out

    listed = assessor.ok("list", case_id)
    assert plain_id in listed and sensitive["assessment_id"] in listed and listed.count("(current)") == 2
    as_json = json.loads(assessor.ok("list", case_id, "--current", "--json"))
    assert {a["assessment_id"] for a in as_json["assessments"]} == {plain_id, sensitive["assessment_id"]}

    # New information about the responsible person: theirs lapses, the victim's stands.
    out = assessor.ok("new-info", case_id, "--summary", "a non-molestation order was made", "--participant",
                      responsible)
    assert out.strip() == f"expired: {sensitive['assessment_id']}"
    current = assessor.ok("list", case_id, "--current")
    assert plain_id in current and sensitive["assessment_id"] not in current
    assert "expired" in assessor.ok("show", sensitive["assessment_id"])

    # A manager rejects the next one, with a reason; without one is bad usage.
    again = json.loads(assessor.ok("assess", case_id, responsible, "--factor", "stalking_or_harassment:high:police",
                                   "--json"))
    assert again["status"] == "awaiting_approval"
    code, _, err = manager("reject", again["assessment_id"])
    assert code == 2 and "--reason" in err
    out = manager.ok("reject", again["assessment_id"], "--reason", "needs the police view of the order")
    assert "status:     rejected by mgr-cli: needs the police view of the order" in out and "current:    no" in out


def test_the_gate_denies_then_allows_a_conference_once_the_plan_has_the_measures(tenant, capsys):
    case_id, victim, responsible = _case_at_risk_and_safety(tenant)
    cli = Cli(tenant, capsys)
    people = ["--participant", victim, "--participant", responsible]

    code, out, _ = cli("gate", case_id, "--kind", "conference", *people)
    assert code == GATE_DENIED_EXIT and code not in (0, 1, 2)
    assert out.splitlines()[0] == "deny" and "no current approved risk assessment" in out

    cli.ok("assess", case_id, victim)
    out = cli.ok("assess", case_id, responsible, "--factor", "physical_harm_from_participant:medium:police")
    assert "status:     approved" in out
    # The responsible person is 17: a supporter too.
    assert "measures:   co_facilitation, separate_arrival_and_waiting, supporter_present" in out

    code, out, _ = cli("gate", case_id, "--kind", "conference", *people, "--measure", "co_facilitation")
    assert code == GATE_DENIED_EXIT and out.splitlines()[0] == "deny"
    assert f"participant {responsible}: the plan does not provide" in out and "supporter present" in out
    code, out, _ = cli("gate", case_id, "--kind", "conference", *people, "--measure", "co_facilitation", "--json")
    assert code == GATE_DENIED_EXIT and not json.loads(out).get("allowed") and json.loads(out)["reasons"]

    measures = ["--measure", "co_facilitation", "--measure", "separate_arrival_and_waiting",
                "--measure", "supporter_present"]
    code, out, err = cli("gate", case_id, "--kind", "conference", *people, *measures)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "allow" and len(lines) == 3 and all("cleared by assessment" in line for line in lines[1:])
    assert json.loads(cli.ok("gate", case_id, "--kind", "conference", *people, *measures, "--json"))["allowed"]


def test_bad_input_is_explained_never_a_traceback(tenant, capsys):
    case_id, victim, _ = _case_at_risk_and_safety(tenant)
    cli = Cli(tenant, capsys)

    code, _, err = cli("assess", case_id, victim, "--factor", "bad_vibes:medium:police",
                       "--factor", "emotional_harm:extreme:police")
    assert code == 1 and "INVALID_ARGUMENT" in err
    assert "  factors[0].kind: must be one of physical_harm_to_participant" in err and "domestic_abuse" in err
    assert "  factors[1].severity: must be one of low, medium, high" in err
    assert cli.ok("list", case_id).strip() == "no assessments"           # nothing half-written

    code, _, err = cli("assess", case_id, victim, "--factor", "domestic_abuse:medium")
    assert code == 2 and "KIND:SEVERITY:SOURCE[:NOTES]" in err
    code, _, err = cli("assess", case_id, victim, "--factor", "::police")
    assert code == 2 and "KIND:SEVERITY:SOURCE[:NOTES]" in err
    code, _, err = cli("gate", case_id, "--kind", "tea_party", "--participant", victim)
    assert code == 1 and "INVALID_ARGUMENT" in err and "meeting_kind:" in err
    code, _, err = cli("show", str(uuid.uuid4()))
    assert code == 1 and "NOT_FOUND" in err
    code, _, err = cli("approve", str(uuid.uuid4()), "--expected-version", "two")
    assert code == 2 and "--expected-version" in err
    code, _, err = Cli(tenant, capsys, "auditor", subject="aud-cli")("assess", case_id, victim)
    assert code == 1 and "PERMISSION_DENIED" in err


def test_rules_print_their_version_and_json(tenant, capsys):
    cli = Cli(tenant, capsys, "auditor", subject="aud-cli")
    out = cli.ok("rules")
    first, _, rest = out.partition("\n")
    version = json.loads(cli.ok("rules", "--json"))["version"]
    assert first == f"rules {version}" and version.startswith("risk-rules-")
    rules = json.loads(rest)
    assert rules["version"] == version and "domestic_abuse" in rules["factors"]
