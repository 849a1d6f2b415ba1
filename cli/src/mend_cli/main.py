"""mend: the command-line tool for agencies, coordinators and regional IT.

Credentials come from flags or the environment: MEND_API_KEY (a partner agency) or MEND_TOKEN
(staff). Targets: MEND_REFERRALS_GRPC (default 127.0.0.1:50051), MEND_CASES_GRPC (127.0.0.1:50052),
MEND_RISK_GRPC (127.0.0.1:50053).

Case work (`mend cases ...`, or `mend case ...`): list, show, accept, reject, move, intervention,
consent, informed, support-referral, note, notes, allocate, outcome-add, outcome-update,
no-agreement, follow-up, close; `mend cases ACTION --help` for each. A refused change prints the
status code and each missing condition or invalid field, and exits 1; bad usage exits 2.

Risk assessments (`mend risk ...`): assess, approve, reject, new-info, show, list, gate, rules;
`mend risk ACTION --help` for each. Refusals and bad usage exit as above; `mend risk gate` exits 0
when the meeting may go ahead and 3 when the safety gate denies it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import grpc
from google.protobuf.json_format import MessageToDict

from mend_common.proto_convert import enum_to_plain

from mend.risk.v1 import risk_pb2

from .client import STAGE_ENUM, CasesClient, ReferralsClient, RiskClient

STAGES = [enum_to_plain(STAGE_ENUM, v.number) for v in STAGE_ENUM.values if v.number]
# `mend risk gate` exits with this when the safety gate denies the meeting (1 and 2 are taken by a
# refused or failed call and by bad usage).
GATE_DENIED_EXIT = 3


def _print(message) -> None:
    print(json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2))


def _rpc_error(error: grpc.RpcError) -> int:
    code = error.code() if callable(getattr(error, "code", None)) else None
    details = error.details() if callable(getattr(error, "details", None)) else str(error)
    print(f"error: {code.name if code else 'UNKNOWN'}: {details}", file=sys.stderr)
    try:
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status
        status = rpc_status.from_call(error)
    except Exception:   # no usable status details: the code and message above are all there is
        return 1
    for detail in status.details if status else []:
        bad = error_details_pb2.BadRequest()
        failure = error_details_pb2.PreconditionFailure()
        if detail.Is(bad.DESCRIPTOR) and detail.Unpack(bad):
            for v in bad.field_violations:
                print(f"  {v.field}: {v.description}", file=sys.stderr)
        elif detail.Is(failure.DESCRIPTOR) and detail.Unpack(failure):
            for v in failure.violations:
                print(f"  {v.type}: {v.description}", file=sys.stderr)
    return 1


def _need(value: str | None, what: str) -> str:
    if not value:
        raise SystemExit(f"error: {what} is needed")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mend", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--referrals", default=os.environ.get("MEND_REFERRALS_GRPC", "127.0.0.1:50051"))
    parser.add_argument("--cases", default=os.environ.get("MEND_CASES_GRPC", "127.0.0.1:50052"))
    parser.add_argument("--risk", default=os.environ.get("MEND_RISK_GRPC", "127.0.0.1:50053"))
    parser.add_argument("--api-key", default=os.environ.get("MEND_API_KEY"))
    parser.add_argument("--token", default=os.environ.get("MEND_TOKEN"))
    parser.add_argument("--timeout", type=float, default=10.0)
    sub = parser.add_subparsers(dest="area", required=True)

    token = sub.add_parser("token", help="staff tokens from the local issuer (development)").add_subparsers(dest="action", required=True)
    issue = token.add_parser("issue")
    issue.add_argument("--roles", required=True, help="comma-separated: coordinator,facilitator,manager,auditor,admin")
    issue.add_argument("--county", action="append", required=True, help="repeat for several counties")
    issue.add_argument("--subject", default="cli-user")
    issue.add_argument("--ttl", type=int, default=3600)
    issue.add_argument("--private-key", default=os.environ.get(
        "MEND_TOKEN_PRIVATE_KEY_FILE", str(Path(os.environ.get("MEND_VAR_DIR", "var")) / "token-signing.pem")))
    service = token.add_parser("service", help="a service's token for nameko RPC (store it as a secret)")
    service.add_argument("name", help="the calling service, e.g. risk")
    service.add_argument("--county", action="append", help="limit to these counties (default: the whole region)")
    service.add_argument("--ttl", type=int, default=30 * 24 * 3600)
    service.add_argument("--private-key", default=issue.get_default("private_key"))

    agency = sub.add_parser("agency", help="partner agencies and their API keys (admin)").add_subparsers(dest="action", required=True)
    add = agency.add_parser("add")
    add.add_argument("--name", required=True)
    add.add_argument("--county", required=True)
    add.add_argument("--kind", required=True, help="police, probation, prison, youth_offending_team, victim_support, court, housing, self_referral, other")
    lst = agency.add_parser("list")
    lst.add_argument("--county", default="")
    key = agency.add_parser("issue-key")
    key.add_argument("agency_id")
    key.add_argument("--label", default="")
    rev = agency.add_parser("revoke-key")
    rev.add_argument("key_id")

    referral = sub.add_parser("referral", help="submit referrals and follow them (partner agencies)").add_subparsers(dest="action", required=True)
    submit = referral.add_parser("submit")
    submit.add_argument("file", help="a JSON file shaped like the HTTP API's referral body")
    submit.add_argument("--request-id", help="idempotency key; the same one returns the same referral")
    status = referral.add_parser("status")
    status.add_argument("referral_id")
    referral.add_parser("list")

    cases = sub.add_parser("cases", aliases=["case"], help="case files (coordinators)",
                           description="Case files, over gRPC (mend.cases.v1.CaseService). Stages are given by their "
                                       "plain names: " + ", ".join(STAGES) + ".")
    _case_parsers(cases.add_subparsers(dest="action", required=True))

    risk = sub.add_parser("risk", help="risk assessments and the meeting safety gate (coordinators, managers)",
                          description="Risk assessments, four-eyes approval and the safety gate for meetings, over "
                                      "gRPC (mend.risk.v1.RiskService). Exit status: 0 done, 1 a refused or failed "
                                      f"call, 2 bad usage, {GATE_DENIED_EXIT} the safety gate denied the meeting.")
    _risk_parsers(risk.add_subparsers(dest="action", required=True))
    return parser


def _stage_name(value: str) -> str:
    if value not in STAGES:
        raise argparse.ArgumentTypeError(f"{value!r} is not a stage: must be one of: {', '.join(STAGES)}")
    return value


def _case_parsers(actions) -> None:
    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument("--json", action="store_true", help="print the reply as JSON instead of a summary")

    def action(name: str, help: str, with_case: bool = True) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help, description=help, parents=[fmt])
        if with_case:
            parser.add_argument("case_id")
        return parser

    p = action("list", "search cases, newest first", with_case=False)
    p.add_argument("--county", default="", help="one of your counties (default: all of them)")
    p.add_argument("--stage", type=_stage_name, help="only cases at this stage")
    p.add_argument("--facilitator", default="", help="cases allocated to this facilitator id")
    p.add_argument("--clock-due-by", default="", metavar="YYYY-MM-DD",
                   help="cases with a Victims' Code clock still unmet by this date")
    p.add_argument("--breached-only", action="store_true", help="only cases with a breached, unmet clock")
    p.add_argument("--page-size", type=int, default=50)
    p.add_argument("--page-token", default="")
    action("show", "a case file: stage, participants and consent, facilitators, clocks, outcome, closure")
    p = action("accept", "accept eligibility and suitability (the case moves to contact and information)")
    p.add_argument("--facts-acknowledged", action="store_true",
                   help="the responsible person acknowledges the basic facts of the harm (needed to accept)")
    p.add_argument("--reason", default="")
    p = action("reject", "reject eligibility (the case closes as unsuitable; the referrer sees the reason)")
    p.add_argument("--reason", required=True)
    p = action("move", "move the case one step along the transition table")
    p.add_argument("stage", type=_stage_name, metavar="STAGE", help=", ".join(STAGES))
    p.add_argument("--reason", default="")
    p = action("intervention", "choose the kind of intervention")
    p.add_argument("kind", help="direct_conference, indirect_letters or indirect_shuttle")
    p = action("consent", "record a participant's consent decision")
    p.add_argument("participant_id")
    p.add_argument("status", help="requested, given, declined, withdrawn or expired")
    p.add_argument("--method", default="", help="written, verbal or via_officer_in_charge (needed when given)")
    p.add_argument("--at", default="", help="when it was given, ISO 8601 (default: now)")
    p.add_argument("--note", default="")
    p = action("informed", "record that information about restorative justice was offered (Victims' Code)")
    p.add_argument("participant_id")
    p = action("support-referral", "record a victim's referral to victim support (Victims' Code)")
    p.add_argument("participant_id")
    p = action("note", "add a note (notes are never changed: a correction is a new note)")
    p.add_argument("text")
    p.add_argument("--corrects", default="", metavar="NOTE_ID", help="the note this one corrects")
    action("notes", "list a case's notes")
    p = action("allocate", "allocate a lead facilitator and optionally a co-facilitator")
    p.add_argument("facilitator_ids", nargs="+", metavar="FACILITATOR_ID", help="one or two; the first leads")
    p.add_argument("--reason", default="")
    p = action("outcome-add", "add an item of the outcome agreement")
    p.add_argument("kind", help="apology, reparation, community_work, financial_restitution, behaviour_commitment")
    p.add_argument("description")
    p.add_argument("--owner", required=True, metavar="PARTICIPANT_ID", help="who is to carry it out")
    p.add_argument("--due", required=True, metavar="YYYY-MM-DD")
    p = action("outcome-update", "mark an outcome item completed or cancelled")
    p.add_argument("item_id")
    p.add_argument("status", help="completed or cancelled")
    p = action("no-agreement", "record that no outcome agreement was reached")
    p.add_argument("reason")
    p = action("follow-up", "record the follow-up")
    p.add_argument("--satisfaction", required=True,
                   help="very_satisfied, satisfied, neither, dissatisfied, very_dissatisfied or not_given")
    p.add_argument("--support", default="", help="the support given")
    p.add_argument("--signpost", action="extend", nargs="+", default=[], metavar="AGENCY",
                   help="agencies signposted to (repeatable)")
    p = action("close", "close the case")
    p.add_argument("reason", help="completed, declined, unsuitable, withdrawn, unable_to_contact or terminated")
    p.add_argument("--note", default="")


# -- case files: how they are shown ---------------------------------------------------------------
def _stage(number: int) -> str:
    name = enum_to_plain(STAGE_ENUM, number)
    return str(name) if name is not None else "-"


def _when(message, field: str) -> str:
    """A Timestamp field as 'YYYY-MM-DD HH:MM UTC', or '' when it is not set."""
    if not message.HasField(field):
        return ""
    return getattr(message, field).ToDatetime().strftime("%Y-%m-%d %H:%M UTC")


def _name(p) -> str:
    return " ".join(part for part in (p.given_name, p.family_name) if part) or "(no name)"


def _stage_line(case) -> str:
    nexts = ", ".join(_stage(s) for s in case.next_stages) or "none"
    return f"case {case.case_id}: stage {_stage(case.stage)} (next: {nexts})"


def _participant_lines(case) -> list[str]:
    lines = []
    for p in case.participants:
        consent = p.consent_status or "not_requested"
        if p.consent_method:
            consent += f", {p.consent_method}"
        if p.HasField("consent_at"):
            consent += f", {_when(p, 'consent_at')}"
        flags = [f for f, on in (("youth", p.is_youth), ("enhanced rights", p.enhanced_rights),
                                 ("PROCESS STOPPED", p.process_stopped)) if on]
        lines.append(f"  {p.participant_id}  {p.role:<18} {_name(p)}" + (f" [{', '.join(flags)}]" if flags else ""))
        lines.append(f"      consent: {consent}")
        offered = _when(p, "information_offered_at")
        referred = _when(p, "support_referral_at")
        if offered or referred or p.role == "victim":
            lines.append(f"      information offered: {offered or 'not yet'}"
                         + (f"; support referral: {referred or 'not yet'}" if p.role == "victim" else ""))
    return lines or ["  (none)"]


def _facilitator_lines(case) -> list[str]:
    return [f"  {a.facilitator_id}{' (lead)' if a.lead else ''}  allocated {_when(a, 'allocated_at')}"
            f" by {a.allocated_by}" for a in case.facilitators] or ["  (none allocated)"]


def _clock_lines(case) -> list[str]:
    names = {p.participant_id: _name(p) for p in case.participants}
    lines = []
    for c in case.clocks:
        state = f"met {_when(c, 'met_at')}" if c.HasField("met_at") else "unmet"
        if c.breached:
            state += ", BREACHED"
        lines.append(f"  {c.kind:<17} {names.get(c.participant_id, c.participant_id)} ({c.participant_id})"
                     f"  due {c.due_on}  {state}")
    return lines or ["  (none)"]


def _outcome_lines(case) -> list[str]:
    names = {p.participant_id: _name(p) for p in case.participants}
    lines = [f"  {i.item_id}  {i.kind}: {i.description}  owner {names.get(i.owner_participant_id, i.owner_participant_id)}"
             f"  due {i.due_on}  {i.status}{', OVERDUE' if i.overdue else ''}" for i in case.outcome_items]
    if case.no_agreement_reason:
        lines.append(f"  no agreement reached: {case.no_agreement_reason}")
    return lines or ["  (none)"]


def _show_case(case) -> None:
    out = [f"Case {case.case_id}  county {case.county}  opened {_when(case, 'opened_at')}",
           f"  stage:        {_stage(case.stage)}",
           f"  next stages:  {', '.join(_stage(s) for s in case.next_stages) or 'none'}",
           f"  offence:      {case.offence_type} ({case.offence_category}) on {case.offence_date or '?'}"
           + (f"; flags: {', '.join(case.offence_flags)}" if case.offence_flags else ""),
           f"  initiated:    {case.initiated_by}; seriousness {case.seriousness or '-'}",
           f"  referral:     {case.referral_id} (agency {case.referring_agency_id}, ref {case.agency_reference})"]
    if case.HasField("eligibility"):
        e = case.eligibility
        out.append(f"  eligibility:  {e.decision}" + (" (facts acknowledged)" if e.facts_acknowledged else "")
                   + f" by {e.decided_by} {_when(e, 'decided_at')}" + (f": {e.reason}" if e.reason else ""))
    if case.intervention_kind:
        out.append(f"  intervention: {case.intervention_kind}")
    if case.retention_hold:
        out.append("  retention hold: yes")
    out += ["Participants:", *_participant_lines(case), "Facilitators:", *_facilitator_lines(case),
            "Victims' Code clocks:", *_clock_lines(case), "Outcome agreement:", *_outcome_lines(case)]
    if case.HasField("follow_up"):
        f = case.follow_up
        out += ["Follow-up:", f"  satisfaction {f.satisfaction}; recorded by {f.recorded_by} {_when(f, 'recorded_at')}"]
        if f.support_given:
            out.append(f"  support given: {f.support_given}")
        if f.signposted_to:
            out.append(f"  signposted to: {', '.join(f.signposted_to)}")
    if case.HasField("closure"):
        c = case.closure
        out += ["Closure:", f"  {c.reason} by {c.closed_by} {_when(c, 'closed_at')}" + (f": {c.note}" if c.note else "")]
    print("\n".join(out))


def _show_list(reply) -> None:
    if not reply.cases:
        print("no cases")
    for c in reply.cases:
        print(f"{c.case_id}  {_stage(c.stage):<24} {c.county:<16} opened {_when(c, 'opened_at'):<21} "
              f"{c.agency_reference}")
    if reply.next_page_token:
        print(f"more: --page-token {reply.next_page_token}")


def _show_note(note) -> None:
    print(f"{note.note_id}  {_when(note, 'written_at')}  by {note.author}"
          + (f"  (corrects {note.corrects_note_id})" if note.corrects_note_id else ""))
    print("  " + note.body.replace("\n", "\n  "))


def _run_case_action(client: CasesClient, args) -> int:
    a = args.action
    if a == "list":
        reply = client.list(args.county, args.stage or "", args.page_size, args.page_token, facilitator_id=args.facilitator,
                            clock_due_by=args.clock_due_by, breached_only=args.breached_only)
        if args.json:
            _print(reply)
        else:
            _show_list(reply)
        return 0
    if a == "notes":
        reply = client.list_notes(args.case_id)
        if args.json:
            _print(reply)
        else:
            for note in reply.notes:
                _show_note(note)
            if not reply.notes:
                print("no notes")
        return 0
    if a == "note":
        note = client.add_note(args.case_id, args.text, args.corrects)
        if args.json:
            _print(note)
        else:
            _show_note(note)
        return 0
    # Every other action returns the case; after a change, a stage line and the part it changed.
    sections = {"consent": _participant_lines, "informed": _participant_lines, "support-referral": _clock_lines,
                "allocate": _facilitator_lines, "outcome-add": _outcome_lines, "outcome-update": _outcome_lines,
                "no-agreement": _outcome_lines}
    calls = {
        "show": lambda: client.get(args.case_id),
        "accept": lambda: client.decide_eligibility(args.case_id, True, args.facts_acknowledged, args.reason),
        "reject": lambda: client.decide_eligibility(args.case_id, False, False, args.reason),
        "move": lambda: client.move_stage(args.case_id, args.stage, args.reason),
        "intervention": lambda: client.choose_intervention(args.case_id, args.kind),
        "consent": lambda: client.record_consent(args.case_id, args.participant_id, args.status, args.method,
                                                 args.at, args.note),
        "informed": lambda: client.record_information_offered(args.case_id, args.participant_id),
        "support-referral": lambda: client.record_support_referral(args.case_id, args.participant_id),
        "allocate": lambda: client.allocate_facilitators(args.case_id, args.facilitator_ids, args.reason),
        "outcome-add": lambda: client.add_outcome_item(args.case_id, args.kind, args.description, args.owner,
                                                       args.due),
        "outcome-update": lambda: client.update_outcome_item(args.case_id, args.item_id, args.status),
        "no-agreement": lambda: client.record_no_agreement(args.case_id, args.reason),
        "follow-up": lambda: client.record_follow_up(args.case_id, args.satisfaction, args.support, args.signpost),
        "close": lambda: client.close_case(args.case_id, args.reason, args.note),
    }
    case = calls[a]()
    if args.json:
        _print(case)
    elif a == "show":
        _show_case(case)
    else:
        print(_stage_line(case))
        if a == "intervention":
            print(f"  intervention: {case.intervention_kind}")
        elif a == "close" and case.HasField("closure"):
            print(f"  closed: {case.closure.reason}" + (f" ({case.closure.note})" if case.closure.note else ""))
        elif a in sections:
            print("\n".join(sections[a](case)))
    return 0


# -- risk assessments: `mend risk ...` -------------------------------------------------------------
FACTOR_FORM = "KIND:SEVERITY:SOURCE[:NOTES]"
FACTOR_KINDS_HELP = ("physical_harm_to_participant, physical_harm_from_participant, emotional_harm, "
                     "vulnerability_age, vulnerability_mental_health, vulnerability_learning_disability, "
                     "vulnerability_substance_misuse, safeguarding_child, safeguarding_adult, domestic_abuse, "
                     "sexual_offence, hate_crime, stalking_or_harassment, serious_violence, power_imbalance, "
                     "low_acknowledgement, low_remorse, low_motivation, protective_order, "
                     "licence_or_bail_conditions, prison_conditions, prison_security")
MEETING_KINDS_HELP = "preparation_visit, pre_prison_visit, conference, indirect_session or supervision"
MEASURES_HELP = ("co_facilitation, separate_arrival_and_waiting, supporter_present, prison_venue, indirect_only, "
                 "specialist_facilitator")


def _factor(value: str) -> dict:
    """--factor KIND:SEVERITY:SOURCE[:NOTES] as the client's factor dict; the notes may hold colons.
    Only the form is checked here: the risk service says which kinds, severities and sources exist."""
    parts = value.split(":", 3)
    if len(parts) < 3 or not all(part.strip() for part in parts[:3]):
        raise argparse.ArgumentTypeError(f"{value!r} is not a factor: the form is {FACTOR_FORM}, "
                                         "e.g. domestic_abuse:medium:police")
    factor = {"kind": parts[0].strip(), "severity": parts[1].strip(), "source": parts[2].strip()}
    if len(parts) == 4:
        factor["notes"] = parts[3]
    return factor


def _risk_parsers(actions) -> None:
    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument("--json", action="store_true", help="print the reply as JSON instead of a summary")

    def action(name: str, help: str, *, epilog: str | None = None) -> argparse.ArgumentParser:
        return actions.add_parser(name, help=help, description=help, epilog=epilog, parents=[fmt])

    p = action("assess", "assess one participant of a case at its current stage: the rules give the level, "
                         "control measures and decision, each with its reasons (a sensitive or complex case, or a "
                         "high level, then waits for a manager's approval)")
    p.add_argument("case_id")
    p.add_argument("participant_id")
    p.add_argument("--factor", dest="factors", action="append", type=_factor, default=[], metavar=FACTOR_FORM,
                   help="a risk factor (repeatable). KIND: " + FACTOR_KINDS_HELP + "; SEVERITY: low, medium or high; "
                        "SOURCE: police, probation, prison, yot, victim_support or self_report")
    p = action("approve", "approve an assessment awaiting approval (a manager of the county; never the assessor)")
    p.add_argument("assessment_id")
    p.add_argument("--expected-version", type=int, default=0, metavar="N",
                   help="refuse (ABORTED) if the assessment is no longer at this version")
    p = action("reject", "reject an assessment awaiting approval (a manager of the county; never the assessor)")
    p.add_argument("assessment_id")
    p.add_argument("--reason", required=True)
    p.add_argument("--expected-version", type=int, default=0, metavar="N",
                   help="refuse (ABORTED) if the assessment is no longer at this version")
    p = action("new-info", "record new information: the assessments in force expire and a new one is due")
    p.add_argument("case_id")
    p.add_argument("--summary", required=True, help="what has changed")
    p.add_argument("--participant", default="", metavar="PARTICIPANT_ID", help="only this participant's "
                                                                               "(default: the whole case)")
    p = action("show", "an assessment: level, decision, measures, status, factors and the reason for each conclusion")
    p.add_argument("assessment_id")
    p = action("list", "a case's assessments, newest first")
    p.add_argument("case_id")
    p.add_argument("--current", action="store_true", help="only those approved and in force")
    p = action("gate", "ask the safety gate whether a meeting may go ahead",
               epilog=f"Exit status: 0 allow, {GATE_DENIED_EXIT} deny, 1 a refused or failed call, 2 bad usage.")
    p.add_argument("case_id")
    p.add_argument("--kind", required=True, metavar="MEETING_KIND", help=MEETING_KINDS_HELP)
    p.add_argument("--participant", dest="participants", action="append", default=[], metavar="PARTICIPANT_ID",
                   help="a participant who takes part (repeatable)")
    p.add_argument("--measure", dest="measures", action="append", default=[], metavar="MEASURE",
                   help="a control measure the meeting's plan provides (repeatable): " + MEASURES_HELP)
    action("rules", "the risk rules in force: their version and the rules as JSON")


def _assessment_status(a) -> str:
    if a.status == "approved":
        by = f" by {a.approved_by}" if a.approved_by else ""
        return f"approved{by} {_when(a, 'approved_at')}".rstrip()
    if a.status == "rejected":
        return f"rejected by {a.rejected_by}" + (f": {a.rejection_reason}" if a.rejection_reason else "")
    if a.status == "expired":
        return f"expired {_when(a, 'expired_at')}".rstrip() + (f": {a.expiry_reason}" if a.expiry_reason else "")
    if a.status == "awaiting_approval":
        return "awaiting_approval (a manager of the county, not the assessor, must approve or reject it)"
    return a.status or "-"


def _show_assessment(a) -> None:
    out = [f"Assessment {a.assessment_id}  case {a.case_id}  participant {a.participant_id}",
           f"  level:      {a.level or '-'}",
           f"  decision:   {a.decision or '-'}",
           f"  measures:   {', '.join(a.measures) or 'none'}",
           f"  status:     {_assessment_status(a)}",
           f"  current:    {'yes' if a.current else 'no'}",
           f"  assessed:   by {a.assessor} {_when(a, 'assessed_at')} at stage {a.stage or '-'}",
           f"  rules:      {a.rule_version}; assessment version {a.version}"]
    if a.HasField("expires_at"):
        out.append(f"  expires:    {_when(a, 'expires_at')}")
    if a.supersedes:
        out.append(f"  supersedes: {a.supersedes}")
    out.append("Factors:")
    out += [f"  {f.kind} {f.severity} ({f.source})" + (f": {f.notes}" if f.notes else "") for f in a.factors] \
        or ["  (none recorded)"]
    out.append("Reasons:")
    out += [f"  {r.conclusion}  [{r.rule_id}]  {r.text}" for r in a.reasons] or ["  (none)"]
    print("\n".join(out))


def _show_assessment_list(assessments) -> None:
    if not assessments:
        print("no assessments")
    for a in assessments:
        print(f"{a.assessment_id}  participant {a.participant_id}  {a.level:<9} {a.decision:<14} {a.status:<17} "
              f"assessed {_when(a, 'assessed_at')}" + ("  (current)" if a.current else ""))


def _run_risk_action(client: RiskClient, args) -> int:
    a = args.action
    if a == "gate":
        decision = client.check_meeting_safety(args.case_id, args.participants, args.kind, args.measures)
        if args.json:
            _print(decision)
        else:
            print("allow" if decision.allowed else "deny")
            for reason in decision.reasons:
                print(f"  {reason}")
        return 0 if decision.allowed else GATE_DENIED_EXIT
    if a == "rules":
        rules = client.rules()
        if args.json:
            _print(rules)
        else:
            print(f"rules {rules.version}")
            try:
                print(json.dumps(json.loads(rules.rules_json), indent=2, sort_keys=True))
            except ValueError:
                print(rules.rules_json)
        return 0
    if a == "new-info":
        expired = client.new_information(args.case_id, args.summary, args.participant)
        if args.json:
            _print(risk_pb2.RecordNewInformationResponse(expired_assessment_ids=expired))
        else:
            print(f"expired: {', '.join(expired)}" if expired else "no assessment was in force: none expired")
        return 0
    if a == "list":
        found = client.list(args.case_id, args.current)
        if args.json:
            _print(risk_pb2.ListAssessmentsResponse(assessments=found))
        else:
            _show_assessment_list(found)
        return 0
    calls = {
        "assess": lambda: client.assess(args.case_id, args.participant_id, args.factors),
        "approve": lambda: client.approve(args.assessment_id, args.expected_version),
        "reject": lambda: client.reject(args.assessment_id, args.reason, args.expected_version),
        "show": lambda: client.get(args.assessment_id),
    }
    assessment = calls[a]()
    if args.json:
        _print(assessment)
    else:
        _show_assessment(assessment)
    return 0


def run(args) -> int:
    if args.area == "token":
        from mend_common.auth import TokenIssuer
        issuer = TokenIssuer.from_file(Path(args.private_key))
        if args.action == "service":
            print(issuer.issue_service(args.name, args.county or ["*"], ttl_seconds=args.ttl))
            return 0
        print(issuer.issue(args.subject, [r.strip() for r in args.roles.split(",") if r.strip()], args.county,
                           ttl_seconds=args.ttl))
        return 0
    if args.area == "agency":
        client = ReferralsClient(args.referrals, token=_need(args.token, "--token or MEND_TOKEN (admin)"), timeout=args.timeout)
        if args.action == "add":
            _print(client.create_agency(args.name, args.county, args.kind))
        elif args.action == "list":
            _print(client.list_agencies(args.county))
        elif args.action == "issue-key":
            issued = client.issue_key(args.agency_id, args.label)
            print(f"key id: {issued.key_id}\napi key (shown once, store it now): {issued.api_key}")
        else:
            print("revoked" if client.revoke_key(args.key_id) else "already revoked")
        return 0
    if args.area == "referral":
        client = ReferralsClient(args.referrals, api_key=args.api_key, token=args.token, timeout=args.timeout)
        if not (args.api_key or args.token):
            raise SystemExit("error: --api-key or MEND_API_KEY (or a staff --token for reading) is needed")
        if args.action == "submit":
            try:
                draft = json.loads(Path(args.file).read_text())
            except (OSError, ValueError) as exc:
                raise SystemExit(f"error: cannot read {args.file}: {exc}")
            try:
                _print(client.submit(draft, args.request_id))
            except ValueError as exc:
                raise SystemExit(f"error: {exc}")
        elif args.action == "status":
            _print(client.get(args.referral_id))
        else:
            _print(client.list())
        return 0
    if args.area == "risk":
        client = RiskClient(args.risk, token=_need(args.token, "--token or MEND_TOKEN"), timeout=args.timeout)
        try:
            return _run_risk_action(client, args)
        finally:
            client.close()
    client = CasesClient(args.cases, token=_need(args.token, "--token or MEND_TOKEN"), timeout=args.timeout)
    try:
        return _run_case_action(client, args)
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (0, 1 for a refused or failed call, 2 for bad usage,
    GATE_DENIED_EXIT (3) when `mend risk gate` is denied)."""
    try:
        args = build_parser().parse_args(argv)
        return run(args)
    except grpc.RpcError as error:
        return _rpc_error(error)
    except SystemExit as exc:           # argparse and _need: the message is already written or is the code
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 1
        return exc.code or 0


if __name__ == "__main__":
    sys.exit(main())
