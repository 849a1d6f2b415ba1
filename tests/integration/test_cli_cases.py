"""The `mend cases` (alias `mend case`) commands, run through the CLI's main() against a live
region: a coordinator takes a case from referral to consent and sees refusals explained."""
from __future__ import annotations

import json
import uuid

from tests.support.case_flow import opened_case
from tests.support.cli import StaffCli


def _opened_case(tenant) -> str:
    return opened_case(tenant)[1]


def Cli(tenant, capsys, *roles: str) -> StaffCli:
    return StaffCli(tenant, capsys, "cases", "case", *roles)


def test_a_coordinator_works_a_case_from_the_command_line(tenant, capsys):
    case_id = _opened_case(tenant)
    cli = Cli(tenant, capsys)

    listed = cli.ok("list", "--county", tenant.county)
    assert case_id in listed and "referral_received" in listed
    assert cli.ok("list", "--county", tenant.county, "--stage", "consent").strip() == "no cases"
    as_json = json.loads(cli.ok("list", "--county", tenant.county, "--json"))
    assert [c["case_id"] for c in as_json["cases"]] == [case_id]
    assert case_id in cli.ok("list", "--county", tenant.county, "--clock-due-by", "2099-12-31", "--page-size", "5")
    assert cli.ok("list", "--county", tenant.county, "--facilitator", "nobody").strip() == "no cases"
    cli.ok("list", "--county", tenant.county, "--breached-only")

    shown = cli.ok("show", case_id)
    assert "stage:        referral_received" in shown and "next stages:  eligibility" in shown
    assert "Jo Bloggs" in shown and "consent: not_requested" in shown
    assert "rj_information" in shown and "due 20" in shown           # the victim's Victims' Code clocks
    case = json.loads(cli.ok("show", case_id, "--json"))
    assert case["stage"] == "STAGE_REFERRAL_RECEIVED"
    pid = {p["role"]: p["participant_id"] for p in case["participants"]}
    principals = [pid["victim"], pid["responsible_person"]]

    out = cli.ok("accept", case_id, "--facts-acknowledged", "--reason", "suitable for RJ")
    assert "stage contact_and_information" in out

    # Not ready for consent until information is offered to both: each missing condition is named.
    code, _, err = cli("move", case_id, "consent")
    assert code != 0 and "FAILED_PRECONDITION" in err
    assert "information_offered: no information about restorative justice offered to the victim Jo Bloggs" in err
    assert "responsible person Lee Doe" in err

    for participant in principals:
        cli.ok("informed", case_id, participant)
    assert "stage consent" in cli.ok("move", case_id, "consent", "--reason", "both informed")

    # Bad input: the field and the rule, and a non-zero exit.
    code, _, err = cli("consent", case_id, pid["victim"], "maybe", "--method", "verbal")
    assert code != 0 and "INVALID_ARGUMENT" in err and "status: must be one of: requested, given" in err
    code, _, err = cli("move", case_id, "not_a_stage")
    assert code != 0 and "STAGE" in err and "must be one of: referral_received" in err
    code, _, err = cli("consent", case_id, pid["victim"], "given")
    assert code != 0 and "method: is required when consent is given" in err

    for participant in principals:
        out = cli.ok("consent", case_id, participant, "given", "--method", "verbal", "--note", "by phone")
    assert out.count("consent: given, verbal") == 2
    assert "stage risk_and_safety" in cli.ok("move", case_id, "risk_and_safety")

    # Nobody has been assessed yet: the risk service does not clear the move, and the CLI says why.
    code, _, err = cli("move", case_id, "preparation")
    assert code != 0 and "FAILED_PRECONDITION" in err
    assert "risk_assessment_approved: no current approved risk assessment" in err

    # Actions that belong to later stages, or name people not on the facilitator register, are
    # refused with the reason.
    assert "intervention: direct_conference" in cli.ok("intervention", case_id, "direct_conference")
    assert "met " in cli.ok("support-referral", case_id, pid["victim"])
    code, _, err = cli("allocate", case_id, "fac-1", "fac-2")
    assert code != 0 and "FAILED_PRECONDITION" in err
    assert "facilitator_known: facilitator fac-1 is not on the facilitator register" in err
    code, _, err = cli("outcome-add", case_id, "apology", "a letter", "--owner", pid["responsible_person"],
                       "--due", "2099-01-01")
    assert code != 0 and "FAILED_PRECONDITION" in err and "outcome_agreement_stage" in err
    code, _, err = cli("follow-up", case_id, "--satisfaction", "satisfied", "--signpost", "Victim Support")
    assert code != 0 and "FAILED_PRECONDITION" in err and "follow_up_stage" in err
    code, _, err = cli("close", case_id, "completed")
    assert code != 0 and "at_follow_up:" in err and "follow_up_recorded: no follow-up recorded" in err

    shown = cli.ok("show", case_id)
    assert "stage:        risk_and_safety" in shown and "consent: given, verbal" in shown
    assert "eligibility:  accepted (facts acknowledged)" in shown

    first = json.loads(cli.ok("note", case_id, "Spoke to the victim.", "--json"))
    cli.ok("note", case_id, "Spoke to the victim's sister.", "--corrects", first["note_id"])
    notes = cli.ok("notes", case_id)
    assert "Spoke to the victim." in notes and f"(corrects {first['note_id']})" in notes

    out = cli.ok("close", case_id, "withdrawn", "--note", "victim no longer wishes to take part")
    assert "stage closed" in out and "closed: withdrawn" in out
    assert "withdrawn by" in cli.ok("show", case_id)


def test_errors_are_explained_never_a_traceback(tenant, capsys):
    cli = Cli(tenant, capsys)
    code, _, err = cli("show", str(uuid.uuid4()))
    assert code == 1 and "NOT_FOUND" in err
    code, _, err = cli("list", "--clock-due-by", "next tuesday")
    assert code == 1 and "clock_due_by: must be a date, YYYY-MM-DD" in err
    code, _, err = cli("accept", "not-a-uuid", "--facts-acknowledged")
    assert code == 1 and "case_id: must be a case id" in err
    code, _, err = Cli(tenant, capsys, "auditor")("close", _opened_case(tenant), "withdrawn")
    assert code == 1 and "PERMISSION_DENIED" in err
