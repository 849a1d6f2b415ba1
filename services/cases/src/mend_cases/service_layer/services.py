"""Use cases of the cases service: open cases from referrals, read and search them, and every
change to a case file from eligibility to closure."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable

from prometheus_client import Counter

from mend_common.auth import Principal
from mend_common.envelope import Envelope, new_event
from mend_common.errors import (ConditionsNotMet, FailedPrecondition, NotFound, PermissionDenied, ValidationFailed,
                                Violations)

from ..domain import lifecycle
from ..domain.access import can_act, can_read
from ..domain.allocation import allocation_problems
from ..domain.case import (CLOSURE_REASONS, CONSENT_METHODS, CONSENT_STATUSES, CONTACT_CHANNELS, INTERVENTION_KINDS,
                           OUTCOME_ITEM_KINDS, OUTCOME_ITEM_STATUSES, PARTICIPANT_ROLES, SATISFACTION, STAGES,
                           VULNERABILITIES, Case, CaseRuleBroken, Clock, FollowUp, InvalidReferral, Note,
                           new_participant, open_case)
from ..domain.clocks import local_day, start_clocks, was_met_late
from .ports import FacilitatorRegister, RiskService

log = logging.getLogger(__name__)
SERVICE = "cases"
CASES_OPENED = Counter("mend_cases_opened_total", "Cases opened from referrals", ["county"])
STAGE_CHANGES = Counter("mend_case_stage_changes_total", "Cases entering a stage", ["county", "stage"])
TRANSITIONS_REFUSED = Counter("mend_case_transitions_refused_total", "Stage moves refused, by first missing condition",
                              ["condition"])
CONSENTS = Counter("mend_case_consents_total", "Consent decisions recorded", ["county", "status"])
CLOCK_BREACHES = Counter("mend_victims_code_breaches_total", "Victims' Code clocks breached", ["county", "clock"])
OVERDUE_ITEMS = Counter("mend_outcome_items_overdue_total", "Outcome agreement items found overdue", ["county"])
CASES_CLOSED = Counter("mend_cases_closed_total", "Cases closed", ["county", "reason"])

MAX_TEXT = 4000
MAX_NOTE = 20000


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Settings:
    """Knobs of the case rules, from the environment in the composition root."""
    extra_bank_holidays: frozenset[date] = frozenset()
    sweep_batch: int = 500


# -- opening cases from referrals ---------------------------------------------------------------
def open_case_for_referral(uow_factory: Callable, envelope: Envelope, consumer: str,
                           settings: Settings = Settings()) -> Case | None:
    """Handle one referral_received. Returns the case, or None for a redelivery."""
    opened = open_cases_for_referrals(uow_factory, [envelope], consumer, settings)
    return opened[0] if opened else None


def open_cases_for_referrals(uow_factory: Callable, envelopes: list[Envelope], consumer: str,
                             settings: Settings = Settings()) -> list[Case]:
    """Handle a batch of referral_received events in one transaction: exactly one case per
    referral, however often or together its events arrive, with its victims' Victims' Code
    clocks started. Returns the cases opened (none for a redelivery). An event that cannot
    become a case fails the whole batch, so nothing is half written; the worker then handles
    each event of the batch on its own."""
    opened_at = _now()
    candidates: dict[str, tuple[Envelope, Case]] = {}
    for envelope in envelopes:
        if envelope.event_id not in candidates:
            case = _case_from(envelope, opened_at)
            for victim in case.parties("victim"):
                case.clocks += start_clocks(case, victim, settings.extra_bank_holidays)
            candidates[envelope.event_id] = (envelope, case)
    with uow_factory() as uow:
        claimed = uow.claim_events(consumer, list(candidates))      # first delivery of each event only
        fresh = [candidates[event_id] for event_id in candidates if event_id in claimed]
        stored = uow.cases.add_many([case for _, case in fresh])     # one case per referral
        opened = [(envelope, case) for envelope, case in fresh if case.case_id in stored]
        for envelope, case in opened:
            uow.publish(new_event(SERVICE, "case_opened", case.county, {
                "case_id": case.case_id, "referral_id": case.referral_id, "stage": case.stage,
                "opened_at": case.opened_at.isoformat(), **_referrer(case),
            }, correlation_id=envelope.correlation_id))
            uow.audit("system:referrals", "case.open", "case", case.case_id, case.county,
                      reason=f"referral {case.referral_id} received", correlation_id=envelope.correlation_id)
    for envelope, case in opened:
        CASES_OPENED.labels(case.county).inc()
        log.info("case %s opened for referral %s", case.case_id, case.referral_id,
                 extra={"correlation_id": envelope.correlation_id})
    return [case for _, case in opened]


def _case_from(envelope: Envelope, opened_at: datetime) -> Case:
    payload = envelope.payload
    try:
        received_at = datetime.fromisoformat(payload["received_at"]) if payload.get("received_at") else envelope.occurred
    except (TypeError, ValueError):
        raise InvalidReferral(f"referral_received has a malformed received_at: {payload.get('received_at')!r}") from None
    return open_case(
        referral_id=payload.get("referral_id"), county=envelope.county,
        agency_id=str(payload.get("agency_id", "")), received_at=received_at,
        referral=payload.get("referral"), opened_at=opened_at)


# -- reading ------------------------------------------------------------------------------------
def _require_staff(principal: Principal) -> None:
    if principal.kind != "staff" or not principal.has_any_role("coordinator", "manager", "auditor", "facilitator"):
        raise PermissionDenied("case files are for coordinators, facilitators, managers and auditors")


def _case_id(case_id: str) -> str:
    try:
        return str(uuid.UUID(case_id))
    except (ValueError, TypeError, AttributeError):
        raise ValidationFailed([_v("case_id", "must be a case id (a UUID)")]) from None


def _v(field_name: str, rule: str):
    from mend_common.errors import FieldViolation
    return FieldViolation(field_name, rule)


def get_case(uow_factory: Callable, principal: Principal, case_id: str) -> Case:
    _require_staff(principal)
    try:
        uuid.UUID(case_id)
    except (ValueError, TypeError):
        raise NotFound(f"case {case_id} not found") from None
    with uow_factory() as uow:
        case = uow.cases.get(case_id)
        visible = case is not None and case.visible_to(principal)
        # A refused read is audited too, but another county's case, or one not allocated to this
        # facilitator, looks missing to the caller.
        uow.audit(principal.label, "case.read" if visible else "case.read_refused", "case", case_id,
                  case.county if visible else None)
    if not visible:
        raise NotFound(f"case {case_id} not found")
    return case


def list_cases(uow_factory: Callable, principal: Principal, *, county: str, stage: str | None, page_size: int,
               page_token: str, facilitator_id: str = "", clock_due_by: str = "",
               breached_only: bool = False) -> tuple[list[Case], str]:
    """Search a page of cases, newest first: by county, stage, allocated facilitator, and
    Victims' Code clocks unmet by a date (or already breached). A facilitator sees only their own."""
    from ..adapters.repository import decode_page_token, encode_page_token
    _require_staff(principal)
    v = Violations()
    page_size = page_size or 50
    if not 1 <= page_size <= 200:
        v.add("page_size", "must be between 1 and 200")
    if stage and stage not in STAGES:
        v.add("stage", f"must be one of: {', '.join(STAGES)}")
    after = decode_page_token(page_token) if page_token else None
    if page_token and after is None:
        v.add("page_token", "is not a token this service issued")
    due_by = None
    if clock_due_by:
        try:
            due_by = date.fromisoformat(clock_due_by)
        except (TypeError, ValueError):
            v.add("clock_due_by", "must be a date, YYYY-MM-DD")
    if facilitator_id and (len(facilitator_id) > 64 or not facilitator_id.isprintable()):
        v.add("facilitator_id", "must be at most 64 printable characters")
    v.raise_if_any()
    if county and county not in principal.counties:
        raise NotFound(f"county {county} not found among yours")
    if not principal.has_any_role("coordinator", "manager", "auditor"):
        # A facilitator's search runs over their own allocation only, whatever they ask for.
        if facilitator_id and facilitator_id != principal.subject:
            return [], ""
        facilitator_id = principal.subject
    counties = [county] if county else sorted(principal.counties)
    with uow_factory() as uow:
        items = uow.cases.search(counties=counties, stage=stage, facilitator_id=facilitator_id or None,
                                 clock_due_by=due_by, breached_only=breached_only, after=after, limit=page_size + 1)
        shown = items[:page_size]
        uow.audit(principal.label, "case.list", "case", None, county or None,
                  reason=f"{len(shown)} cases listed: " + ",".join(c.case_id[:8] for c in shown)[:900])
    token = ""
    if len(items) > page_size:
        token = encode_page_token(shown[-1].opened_at, shown[-1].case_id)
    return shown, token


def list_notes(uow_factory: Callable, principal: Principal, case_id: str) -> list[Note]:
    _require_staff(principal)
    case_id = _case_id(case_id)
    with uow_factory() as uow:
        facts = uow.cases.access_facts(case_id)
        visible = facts is not None and can_read(principal, facts[0], facts[1])
        notes = uow.cases.notes(case_id) if visible else []
        uow.audit(principal.label, "case.notes_read" if visible else "case.notes_read_refused", "case", case_id,
                  facts[0] if visible else None)
    if not visible:
        raise NotFound(f"case {case_id} not found")
    return notes


# -- changing a case ----------------------------------------------------------------------------
@dataclass
class Change:
    """What a change to a case produced: the result for the caller, the events to publish and
    anything else to write in the same transaction."""
    result: Any = None
    events: list[tuple[str, dict]] = field(default_factory=list)
    audit_reason: str = ""
    extra: Callable | None = None       # extra(uow): more writes in the same transaction


def _change(uow_factory: Callable, principal: Principal, case_id: str, action: str,
            apply: Callable[[Case, datetime], Change], *, allow_closed: bool = False) -> Any:
    """Load the case locked, check the caller may take this action on it, apply the change to
    the case in memory, then save it, publish its events and audit it, all in one transaction.
    A refusal writes nothing but its audit record."""
    _require_staff(principal)
    case_id = _case_id(case_id)
    at = _now()
    refusal: Exception | None = None
    with uow_factory() as uow:
        case = uow.cases.get_for_update(case_id)
        if case is None or not can_read(principal, case.county, case.allocated_facilitators):
            refusal = NotFound(f"case {case_id} not found")
        elif not can_act(principal, action, case.county, case.allocated_facilitators):
            refusal = PermissionDenied(f"your roles do not allow '{action.replace('_', ' ')}' on this case")
        else:
            try:
                if case.is_closed and not allow_closed:
                    case.require_open()
                change = apply(case, at)
            except lifecycle.StageRefused as refused:
                TRANSITIONS_REFUSED.labels(refused.condition).inc()
                refusal = ConditionsNotMet(refused.action, refused.missing)
            except CaseRuleBroken as broken:
                TRANSITIONS_REFUSED.labels(broken.condition).inc()
                refusal = ConditionsNotMet(action.replace("_", " "), [(broken.condition, broken.description)])
        if refusal is not None:
            uow.audit(principal.label, f"case.{action}_refused", "case", case_id,
                      case.county if case is not None and not isinstance(refusal, NotFound) else None,
                      reason=refusal.message[:500])
        else:
            uow.cases.save(case, at)
            if change.extra:
                change.extra(uow)
            for event_type, payload in change.events:
                uow.publish(new_event(SERVICE, event_type, case.county, {"case_id": case.case_id, **payload}))
            uow.audit(principal.label, f"case.{action}", "case", case_id, case.county,
                      reason=change.audit_reason[:500] or None)
    if refusal is not None:
        raise refusal
    for event_type, payload in change.events:
        if event_type == "stage_changed":
            STAGE_CHANGES.labels(case.county, payload["to_stage"]).inc()
        elif event_type == "case_closed":
            CASES_CLOSED.labels(case.county, payload["reason"]).inc()
        elif event_type in ("consent_recorded",):
            CONSENTS.labels(case.county, payload["status"]).inc()
        elif event_type == "victims_code_breach":
            CLOCK_BREACHES.labels(case.county, payload["clock"]).inc()
    return change.result


def _stage_event(case: Case, from_stage: str, change) -> tuple[str, dict]:
    return ("stage_changed", {"from_stage": from_stage, "to_stage": change.stage, "reason": change.reason,
                              "at": change.at.isoformat(), "by": change.by})


def _stage_events(case: Case, changes) -> list[tuple[str, dict]]:
    events, previous = [], None
    for ch in changes:
        index = case.history.index(ch)
        previous = case.history[index - 1].stage if index else None
        events.append(_stage_event(case, previous, ch))
    return events


def _referrer(case: Case) -> dict:
    """Who referred the case, so the referrer can be told without another lookup."""
    return {"agency_id": case.referring_agency_id, "agency_reference": case.agency_reference}


def _closed_event(case: Case) -> tuple[str, dict]:
    c = case.closure
    payload = {"referral_id": case.referral_id, "reason": c.reason, "after_rejection": c.after_rejection,
               "closed_at": c.closed_at.isoformat(), **_referrer(case)}
    if c.after_rejection:
        payload["rejection_reason"] = case.eligibility.reason    # written for the referrer
    return ("case_closed", payload)


def _text(v: Violations, name: str, value: str, *, required: bool, limit: int = MAX_TEXT) -> str:
    return v.text(name, value, required=required, limit=limit)


def _choice(v: Violations, name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        v.add(name, f"must be one of: {', '.join(allowed)}")
    return value


def decide_eligibility(uow_factory: Callable, principal: Principal, case_id: str, *, accepted: bool,
                       facts_acknowledged: bool, reason: str) -> Case:
    v = Violations()
    reason = _text(v, "reason", reason, required=not accepted)
    v.raise_if_any()

    def apply(case: Case, at: datetime) -> Change:
        changes = lifecycle.decide_eligibility(case, accepted, facts_acknowledged, reason, at, principal.label)
        events = [("eligibility_decided", {"referral_id": case.referral_id, **_referrer(case),
                                           "decision": case.eligibility.decision, "reason": reason,
                                           "facts_acknowledged": facts_acknowledged, "decided_at": at.isoformat()})]
        events += _stage_events(case, changes)
        if case.closure:
            events.append(_closed_event(case))
        return Change(case, events, f"eligibility {case.eligibility.decision}")
    return _change(uow_factory, principal, case_id, "decide_eligibility", apply)


def move_stage(uow_factory: Callable, risk: RiskService, principal: Principal, case_id: str, *, to_stage: str,
               reason: str) -> Case:
    v = Violations()
    _choice(v, "to_stage", to_stage, STAGES)
    reason = _text(v, "reason", reason, required=False)
    v.raise_if_any()
    # The risk service is asked before the case is locked, so a slow answer holds no lock.
    facts = lifecycle.Facts()
    with uow_factory() as uow:
        current = uow.cases.get(_case_id(case_id))
    if current is not None and current.visible_to(principal) and not current.is_closed \
            and lifecycle.needs_risk(current, to_stage):
        facts = lifecycle.Facts(risk=risk.clearance(current, to_stage))

    def apply(case: Case, at: datetime) -> Change:
        from_stage = case.stage
        if lifecycle.needs_risk(case, to_stage) and facts.risk is None:
            raise CaseRuleBroken("case_changed", "the case changed while the risk service was asked: try again")
        change = lifecycle.move(case, to_stage, facts, at, principal.label, reason)
        return Change(case, [_stage_event(case, from_stage, change)], f"{from_stage} -> {to_stage}")
    return _change(uow_factory, principal, case_id, "move_stage", apply)


def choose_intervention(uow_factory: Callable, principal: Principal, case_id: str, *, kind: str) -> Case:
    v = Violations()
    _choice(v, "kind", kind, INTERVENTION_KINDS)
    v.raise_if_any()

    def apply(case: Case, at: datetime) -> Change:
        case.choose_intervention(kind)
        return Change(case, [], f"intervention: {kind}")
    return _change(uow_factory, principal, case_id, "choose_intervention", apply)


def add_participant(uow_factory: Callable, principal: Principal, case_id: str, data: dict,
                    settings: Settings = Settings()) -> Case:
    v = Violations()
    role = _choice(v, "participant.role", data.get("role", ""), PARTICIPANT_ROLES)
    given = _text(v, "participant.given_name", data.get("given_name", ""), required=True, limit=100)
    family = _text(v, "participant.family_name", data.get("family_name", ""), required=False, limit=100)
    born = data.get("date_of_birth") or None
    if born:
        try:
            if date.fromisoformat(born) > date.today():
                v.add("participant.date_of_birth", "must not be in the future")
        except (TypeError, ValueError):
            v.add("participant.date_of_birth", "must be a date, YYYY-MM-DD")
    age = data.get("age") or None
    if age is not None and (not isinstance(age, int) or not 0 <= age <= 120):
        v.add("participant.age", "must be between 0 and 120")
    vulnerabilities = list(data.get("vulnerabilities") or [])
    for i, item in enumerate(vulnerabilities):
        _choice(v, f"participant.vulnerabilities[{i}]", item, VULNERABILITIES)
    contact = {k: _text(v, f"participant.contact.{k}", str(data.get("contact", {}).get(k) or ""), required=False,
                        limit=200) for k in ("email", "phone", "address", "postcode")}
    channel = data.get("contact", {}).get("preferred_channel") or ""
    if channel:
        _choice(v, "participant.contact.preferred_channel", channel, CONTACT_CHANNELS)
        if channel in ("email", "phone", "sms") and not contact["email" if channel == "email" else "phone"]:
            v.add("participant.contact.preferred_channel", f"{channel} is preferred but no "
                  f"{'email' if channel == 'email' else 'phone number'} is given")
    contact["preferred_channel"] = channel
    v.raise_if_any()

    def apply(case: Case, at: datetime) -> Change:
        person = new_participant(role, given, family, born, age, vulnerabilities, bool(data.get("consent_to_contact")),
                                 contact, local_day(at))
        case.add_participant(person)
        new_clocks = start_clocks(case, person, settings.extra_bank_holidays)
        case.clocks += new_clocks
        return Change(person, [("participant_added", {"participant_id": person.participant_id, "role": role})],
                      f"{role} added")
    return _change(uow_factory, principal, case_id, "add_participant", apply)


def record_consent(uow_factory: Callable, principal: Principal, case_id: str, *, participant_id: str, status: str,
                   method: str, given_at: str = "", note: str = "") -> Case:
    v = Violations()
    _choice(v, "status", status, CONSENT_STATUSES[1:])
    if method:
        _choice(v, "method", method, CONSENT_METHODS)
    elif status == "given":
        v.add("method", "is required when consent is given: written, verbal or via_officer_in_charge")
    note = _text(v, "note", note, required=False)
    when = None
    if given_at:
        try:
            when = datetime.fromisoformat(given_at.replace("Z", "+00:00"))
            when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
            if when > _now():
                v.add("at", "must not be in the future")
        except (TypeError, ValueError):
            v.add("at", "must be a date and time, ISO 8601")
    v.raise_if_any()

    def apply(case: Case, at: datetime) -> Change:
        person = case.participant(participant_id)
        record = case.record_consent(participant_id, status, method, when or at, principal.label, note)
        payload = {"participant_id": participant_id, "role": person.role, "status": status, "method": method,
                   "at": record.at.isoformat()}
        events = [("consent_recorded", payload)]
        if status == "withdrawn":
            events.append(("consent_withdrawn", {"participant_id": participant_id, "role": person.role,
                                                 "stage": case.stage, "at": record.at.isoformat()}))
        return Change(case, events, f"consent {status} ({person.role})")
    return _change(uow_factory, principal, case_id, "record_consent", apply)


def _clock_actions(uow_factory, principal, case_id, participant_id: str, action: str, what: str) -> Case:
    def apply(case: Case, at: datetime) -> Change:
        met: list[Clock] = (case.record_information_offered if what == "rj_information"
                            else case.record_support_referral)(participant_id, at)
        late = [c.clock_id for c in met if was_met_late(c)]
        events = [("victims_code_clock_met", {"clock": c.kind, "participant_id": participant_id,
                                              "due_on": c.due_on.isoformat(), "late": c.clock_id in late})
                  for c in met]
        change = Change(case, events, f"{what.replace('_', ' ')} recorded")

        def flag_late(uow) -> None:
            for row in uow.cases.flag_late_clocks(late, at):
                uow.publish(new_event(SERVICE, "victims_code_breach", case.county, _breach_payload(row, late=True)))
                CLOCK_BREACHES.labels(case.county, row["kind"]).inc()
        change.extra = flag_late if late else None
        return change
    return _change(uow_factory, principal, case_id, action, apply)


def record_information_offered(uow_factory: Callable, principal: Principal, case_id: str, *,
                               participant_id: str) -> Case:
    return _clock_actions(uow_factory, principal, case_id, participant_id, "record_information_offered",
                          "rj_information")


def record_support_referral(uow_factory: Callable, principal: Principal, case_id: str, *,
                            participant_id: str) -> Case:
    return _clock_actions(uow_factory, principal, case_id, participant_id, "record_support_referral",
                          "support_referral")


def add_note(uow_factory: Callable, principal: Principal, case_id: str, *, body: str, corrects_note_id: str = "") -> Note:
    v = Violations()
    body = _text(v, "body", body, required=True, limit=MAX_NOTE)
    if corrects_note_id:
        try:
            corrects_note_id = str(uuid.UUID(corrects_note_id))
        except (ValueError, TypeError):
            v.add("corrects_note_id", "must be a note id (a UUID)")
    v.raise_if_any()

    def apply(case: Case, at: datetime) -> Change:
        note = Note(str(uuid.uuid4()), case.case_id, principal.label, at, body, corrects_note_id or None)
        change = Change(note, [], "correction of " + corrects_note_id if corrects_note_id else "note added")

        def write(uow) -> None:
            if corrects_note_id and not uow.cases.note_exists(case.case_id, corrects_note_id):
                raise NotFound(f"note {corrects_note_id} not found on this case")
            uow.cases.add_note(note)
        change.extra = write
        return change
    return _change(uow_factory, principal, case_id, "add_note", apply)


def allocate_facilitators(uow_factory: Callable, register: FacilitatorRegister, principal: Principal, case_id: str,
                          *, facilitator_ids: list[str], reason: str = "") -> Case:
    v = Violations()
    ids = [str(f).strip() for f in facilitator_ids]
    if not 1 <= len(ids) <= 2:
        v.add("facilitator_ids", "name one or two facilitators (a lead and a co-facilitator)")
    for i, fid in enumerate(ids):
        if not fid or len(fid) > 64 or not fid.isprintable():
            v.add(f"facilitator_ids[{i}]", "must be a facilitator id of 1 to 64 printable characters")
    reason = _text(v, "reason", reason, required=False)
    v.raise_if_any()
    # The register is asked before the case is locked; a case seen by nobody asks nothing.
    with uow_factory() as uow:
        current = uow.cases.get(_case_id(case_id))
    records = {}
    if current is not None and can_act(principal, "allocate_facilitators", current.county,
                                       current.allocated_facilitators):
        records = register.records(current.county, ids)

    def apply(case: Case, at: datetime) -> Change:
        problems = allocation_problems(ids, records, case.county, case.seriousness, local_day(at))
        if problems:
            raise lifecycle.StageRefused("cannot allocate these facilitators", problems)
        case.allocate(ids, at, principal.label)
        return Change(case, [("facilitators_allocated", {"facilitator_ids": ids, "lead": ids[0],
                                                         "seriousness": case.seriousness, "at": at.isoformat()})],
                      "allocated: " + ", ".join(ids) + (f" ({reason})" if reason else ""))
    return _change(uow_factory, principal, case_id, "allocate_facilitators", apply)


def add_outcome_item(uow_factory: Callable, principal: Principal, case_id: str, *, kind: str, description: str,
                     owner_participant_id: str, due_on: str) -> Case:
    v = Violations()
    _choice(v, "kind", kind, OUTCOME_ITEM_KINDS)
    description = _text(v, "description", description, required=True, limit=1000)
    if not owner_participant_id:
        v.add("owner_participant_id", "is required")
    due = None
    try:
        due = date.fromisoformat(due_on)
    except (TypeError, ValueError):
        v.add("due_on", "must be a date, YYYY-MM-DD")
    v.raise_if_any()

    def apply(case: Case, at: datetime) -> Change:
        if due < local_day(at):
            raise CaseRuleBroken("due_on_not_past", "an outcome item cannot be due in the past")
        item = case.add_outcome_item(kind, description, owner_participant_id, due, at, principal.label)
        return Change(case, [("outcome_item_recorded", {"item_id": item.item_id, "kind": kind,
                                                        "owner_participant_id": owner_participant_id,
                                                        "due_on": due.isoformat()})], f"outcome item: {kind}")
    return _change(uow_factory, principal, case_id, "record_outcome", apply)


def update_outcome_item(uow_factory: Callable, principal: Principal, case_id: str, *, item_id: str,
                        status: str) -> Case:
    v = Violations()
    _choice(v, "status", status, OUTCOME_ITEM_STATUSES[1:])
    v.raise_if_any()

    def apply(case: Case, at: datetime) -> Change:
        item = case.update_outcome_item(item_id, status, at)
        return Change(case, [("outcome_item_updated", {"item_id": item.item_id, "status": status})],
                      f"outcome item {status}")
    return _change(uow_factory, principal, case_id, "record_outcome", apply)


def record_no_agreement(uow_factory: Callable, principal: Principal, case_id: str, *, reason: str) -> Case:
    v = Violations()
    reason = _text(v, "reason", reason, required=True)
    v.raise_if_any()

    def apply(case: Case, at: datetime) -> Change:
        case.record_no_agreement(reason)
        return Change(case, [], "no agreement reached")
    return _change(uow_factory, principal, case_id, "record_outcome", apply)


def record_follow_up(uow_factory: Callable, principal: Principal, case_id: str, *, support_given: str,
                     signposted_to: list[str], satisfaction: str) -> Case:
    v = Violations()
    support_given = _text(v, "support_given", support_given, required=False)
    if len(signposted_to) > 20:
        v.add("signposted_to", "at most 20 agencies")
    signposted = [_text(v, f"signposted_to[{i}]", s, required=True, limit=200) for i, s in enumerate(signposted_to)]
    _choice(v, "satisfaction", satisfaction, SATISFACTION)
    v.raise_if_any()

    def apply(case: Case, at: datetime) -> Change:
        case.record_follow_up(FollowUp(support_given, signposted, satisfaction, principal.label, at))
        return Change(case, [("follow_up_recorded", {"satisfaction": satisfaction,
                                                     "signposted": len(signposted)})], "follow-up recorded")
    return _change(uow_factory, principal, case_id, "record_follow_up", apply)


def close_case(uow_factory: Callable, principal: Principal, case_id: str, *, reason: str, note: str = "") -> Case:
    v = Violations()
    _choice(v, "reason", reason, CLOSURE_REASONS)
    note = _text(v, "note", note, required=False)
    v.raise_if_any()

    def apply(case: Case, at: datetime) -> Change:
        from_stage = case.stage
        lifecycle.close(case, reason, note, at, principal.label)
        return Change(case, [_stage_event(case, from_stage, case.history[-1]), _closed_event(case)],
                      f"closed: {reason}")
    return _change(uow_factory, principal, case_id, "close_case", apply)


def set_retention_hold(uow_factory: Callable, principal: Principal, case_id: str, *, hold: bool, reason: str) -> Case:
    v = Violations()
    reason = _text(v, "reason", reason, required=True)
    v.raise_if_any()

    def apply(case: Case, at: datetime) -> Change:
        case.set_retention_hold(hold)
        return Change(case, [], ("retention hold placed: " if hold else "retention hold lifted: ") + reason)
    return _change(uow_factory, principal, case_id, "retention_hold", apply, allow_closed=True)


# -- timers -------------------------------------------------------------------------------------
def _breach_payload(row: dict, *, late: bool) -> dict:
    return {"case_id": row["case_id"], "clock": row["kind"], "participant_id": row["participant_id"],
            "started_on": row["started_on"].isoformat(), "due_on": row["due_on"].isoformat(), "met_late": late}


def sweep_due(uow_factory: Callable, settings: Settings = Settings(), now: datetime | None = None) -> dict[str, int]:
    """Find outcome items past their due date and Victims' Code clocks past their last day, flag
    each once (however many workers sweep at the same time) and publish an event for each."""
    at = now or _now()
    today = local_day(at)
    with uow_factory() as uow:
        items = uow.cases.flag_overdue_items(today, at, settings.sweep_batch)
        for row in items:
            uow.publish(new_event(SERVICE, "outcome_item_overdue", row["county"], {
                "case_id": row["case_id"], "item_id": row["item_id"], "kind": row["kind"],
                "owner_participant_id": row["owner_participant_id"], "due_on": row["due_on"].isoformat()}))
            uow.audit("system:cases", "case.outcome_item_overdue", "case", row["case_id"], row["county"])
        clocks = uow.cases.flag_breached_clocks(today, at, settings.sweep_batch)
        for row in clocks:
            uow.publish(new_event(SERVICE, "victims_code_breach", row["county"], _breach_payload(row, late=False)))
            uow.audit("system:cases", "case.victims_code_breach", "case", row["case_id"], row["county"],
                      reason=f"{row['kind']} due {row['due_on']}")
    for row in items:
        OVERDUE_ITEMS.labels(row["county"]).inc()
    for row in clocks:
        CLOCK_BREACHES.labels(row["county"], row["kind"]).inc()
    if items or clocks:
        log.info("sweep: %d outcome items overdue, %d Victims' Code clocks breached", len(items), len(clocks))
    return {"outcome_items_overdue": len(items), "clocks_breached": len(clocks)}


# -- questions from other services (nameko RPC) -------------------------------------------------
def _case_for_service(uow_factory: Callable, caller: Principal, case_id: str, county: str, action: str) -> Case:
    """The case, if it is in that county and the calling service covers it; audited either way."""
    case_id = _case_id(case_id)
    with uow_factory() as uow:
        case = uow.cases.get(case_id)
        visible = case is not None and case.county == county and caller.covers(county)
        uow.audit(caller.label, action if visible else f"{action}_refused", "case", case_id,
                  county if visible else None)
    if not visible:
        raise NotFound(f"case {case_id} not found in {county}")
    return case


def participants_for_service(uow_factory: Callable, caller: Principal, case_id: str, county: str) -> dict:
    """Participants of a case with their consent state and contact preferences, for another
    service acting for the same county (notifications, risk, scheduling)."""
    if caller.kind != "service":
        raise PermissionDenied("this question is for Mend services")
    case = _case_for_service(uow_factory, caller, case_id, county, "case.participants_read")
    return {
        "case_id": case.case_id, "county": case.county, "stage": case.stage, "seriousness": case.seriousness,
        "initiated_by": case.initiated_by, "offence_flags": case.offence_flags,
        "facilitator_ids": case.allocated_facilitators, "intervention_kind": case.intervention_kind,
        "participants": [{
            "participant_id": p.participant_id, "role": p.role, "is_youth": p.is_youth,
            "vulnerabilities": p.vulnerabilities, "consent_status": p.consent_status,
            "consent_current": p.consent_current, "process_stopped": p.process_stopped,
            "consent_to_contact": p.consent_to_contact, "preferred_channel": p.preferred_channel,
        } for p in case.participants],
    }


def participant_contacts_for_service(uow_factory: Callable, caller: Principal, case_id: str, county: str) -> dict:
    """Names and contact details of a case's participants, for the notifications service only:
    the one Mend service that writes to people. Each read is audited."""
    if caller.kind != "service" or caller.subject != "notifications":
        raise PermissionDenied("contact details are for the notifications service")
    case = _case_for_service(uow_factory, caller, case_id, county, "case.contacts_read")
    return {
        "case_id": case.case_id, "county": case.county, "stage": case.stage,
        "agency_reference": case.agency_reference, "referral_id": case.referral_id,
        "participants": [{
            "participant_id": p.participant_id, "role": p.role, "given_name": p.given_name,
            "family_name": p.family_name, "is_youth": p.is_youth, "consent_to_contact": p.consent_to_contact,
            "consent_current": p.consent_current, "process_stopped": p.process_stopped,
            "preferred_channel": p.preferred_channel,
            "email": str(p.contact.get("email") or ""), "phone": str(p.contact.get("phone") or ""),
            "address": str(p.contact.get("address") or ""), "postcode": str(p.contact.get("postcode") or ""),
        } for p in case.participants],
    }

