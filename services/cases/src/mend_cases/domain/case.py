"""The case file: parties, offence, stage, consents, allocation, outcome agreement, follow-up
and closure. Plain Python: no framework imports. The rules for moving between stages live in
lifecycle.py; this module holds the records and the changes that need no stage rule."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

STAGES = (
    "referral_received", "eligibility", "contact_and_information", "consent", "risk_and_safety", "preparation",
    "intervention", "outcome_agreement", "follow_up", "closed",
)
OPEN_STAGES = STAGES[:-1]
PARTICIPANT_ROLES = ("victim", "responsible_person", "supporter", "parent_or_guardian")
# Those whose consent the process needs; supporters and guardians take part alongside them.
PRINCIPAL_PARTIES = ("victim", "responsible_person")
VULNERABILITIES = (
    "mental_health", "learning_disability", "physical_disability", "substance_misuse", "intimidated",
    "persistently_targeted", "bereaved_by_crime", "language_needs", "other",
)
# Victims' Code: victims of the most serious crime, persistently targeted, vulnerable or
# intimidated victims are entitled to enhanced rights (information about RJ within 1 working day).
ENHANCED_RIGHTS_VULNERABILITIES = ("intimidated", "persistently_targeted", "bereaved_by_crime", "mental_health",
                                   "learning_disability", "physical_disability")
CONTACT_CHANNELS = ("email", "phone", "sms", "letter", "via_referrer")
CONSENT_STATUSES = ("not_requested", "requested", "given", "declined", "withdrawn", "expired")
CONSENT_METHODS = ("written", "verbal", "via_officer_in_charge")
INTERVENTION_KINDS = ("direct_conference", "indirect_letters", "indirect_shuttle")
OUTCOME_ITEM_KINDS = ("apology", "reparation", "community_work", "financial_restitution", "behaviour_commitment")
OUTCOME_ITEM_STATUSES = ("pending", "completed", "cancelled")
CLOSURE_REASONS = ("completed", "declined", "unsuitable", "withdrawn", "unable_to_contact", "terminated")
SATISFACTION = ("very_satisfied", "satisfied", "neither", "dissatisfied", "very_dissatisfied", "not_given")
SERIOUSNESS = ("standard", "serious", "sensitive_complex")


class InvalidReferral(ValueError):
    """The referral_received event cannot become a case (a poison message)."""


class CaseRuleBroken(ValueError):
    """A change the case cannot take in its present state; `condition` names the rule."""

    def __init__(self, condition: str, description: str):
        super().__init__(description)
        self.condition = condition
        self.description = description


@dataclass
class ConsentRecord:
    status: str
    method: str
    at: datetime
    recorded_by: str
    note: str = ""


@dataclass
class CaseParticipant:
    participant_id: str
    role: str
    given_name: str
    family_name: str
    date_of_birth: str | None
    age: int | None
    is_youth: bool
    vulnerabilities: list[str]
    consent_to_contact: bool
    preferred_channel: str
    contact: dict[str, str]
    consent_status: str = "not_requested"
    consent_method: str = ""
    consent_at: datetime | None = None
    information_offered_at: datetime | None = None
    support_referral_at: datetime | None = None
    # Set by a withdrawal of consent: nothing more happens with this person until consent is
    # given again.
    process_stopped: bool = False
    consent_history: list[ConsentRecord] = field(default_factory=list)

    @property
    def display_name(self) -> str:
        return " ".join(part for part in (self.given_name, self.family_name) if part) or self.participant_id[:8]

    @property
    def has_enhanced_rights(self) -> bool:
        return self.role == "victim" and any(v in ENHANCED_RIGHTS_VULNERABILITIES for v in self.vulnerabilities)

    @property
    def consent_current(self) -> bool:
        return self.consent_status == "given" and not self.process_stopped


@dataclass
class StageChange:
    stage: str
    at: datetime
    by: str
    reason: str


@dataclass
class Eligibility:
    decision: str                 # accepted or rejected
    facts_acknowledged: bool      # the responsible person acknowledges the basic facts of the harm
    reason: str
    decided_by: str
    decided_at: datetime


@dataclass
class Allocation:
    facilitator_id: str
    lead: bool
    allocated_at: datetime
    allocated_by: str


@dataclass
class OutcomeItem:
    item_id: str
    kind: str
    description: str
    owner_participant_id: str
    due_on: date
    status: str
    recorded_by: str
    updated_at: datetime
    overdue_flagged_at: datetime | None = None


@dataclass
class FollowUp:
    support_given: str
    signposted_to: list[str]
    satisfaction: str
    recorded_by: str
    recorded_at: datetime


@dataclass
class Closure:
    reason: str
    note: str
    closed_by: str
    closed_at: datetime
    after_rejection: bool = False


@dataclass
class Clock:
    """A Victims' Code clock for one victim: rj_information or support_referral."""
    clock_id: str
    kind: str
    participant_id: str
    started_on: date
    basis: str                   # which date started it
    due_on: date
    met_at: datetime | None = None
    breached_at: datetime | None = None


@dataclass
class Note:
    note_id: str
    case_id: str
    author: str
    written_at: datetime
    body: str
    corrects_note_id: str | None = None


@dataclass
class Case:
    case_id: str
    referral_id: str
    county: str
    stage: str
    initiated_by: str
    offence_type: str
    offence_category: str
    offence_date: str
    offence_flags: list[str]
    referring_agency_id: str
    agency_reference: str
    opened_at: datetime
    offence_reported_date: str | None = None
    participants: list[CaseParticipant] = field(default_factory=list)
    history: list[StageChange] = field(default_factory=list)
    facilitators: list[Allocation] = field(default_factory=list)
    eligibility: Eligibility | None = None
    intervention_kind: str = ""
    outcome_items: list[OutcomeItem] = field(default_factory=list)
    no_agreement_reason: str = ""
    follow_up: FollowUp | None = None
    closure: Closure | None = None
    retention_hold: bool = False
    clocks: list[Clock] = field(default_factory=list)
    version: int = 0

    # -- reading ---------------------------------------------------------------------------
    def visible_to(self, principal) -> bool:
        from .access import can_read
        return can_read(principal, self.county, self.allocated_facilitators)

    @property
    def allocated_facilitators(self) -> list[str]:
        return [a.facilitator_id for a in self.facilitators]

    @property
    def is_closed(self) -> bool:
        return self.stage == "closed"

    @property
    def seriousness(self) -> str:
        return seriousness_of(self.offence_category, self.offence_flags)

    def participant(self, participant_id: str) -> CaseParticipant:
        for p in self.participants:
            if p.participant_id == participant_id:
                return p
        raise CaseRuleBroken("participant_on_case", f"participant {participant_id} is not on this case")

    def outcome_item(self, item_id: str) -> OutcomeItem:
        for item in self.outcome_items:
            if item.item_id == item_id:
                return item
        raise CaseRuleBroken("outcome_item_on_case", f"outcome item {item_id} is not on this case")

    def parties(self, role: str) -> list[CaseParticipant]:
        return [p for p in self.participants if p.role == role]

    def require_open(self) -> None:
        if self.is_closed:
            raise CaseRuleBroken("case_open", "the case is closed: only retention actions are allowed")

    # -- changes that need no stage rule ----------------------------------------------------
    def add_participant(self, participant: CaseParticipant) -> None:
        self.require_open()
        if participant.role == "parent_or_guardian" and not any(p.is_youth for p in self.participants
                                                               if p.role in PRINCIPAL_PARTIES):
            raise CaseRuleBroken("youth_party_for_guardian",
                                 "a parent or guardian takes part only for a victim or responsible person under 18")
        self.participants.append(participant)

    def record_consent(self, participant_id: str, status: str, method: str, at: datetime, by: str,
                       note: str = "") -> ConsentRecord:
        """Moves one person's consent along; a withdrawal stops the process for them at once."""
        self.require_open()
        person = self.participant(participant_id)
        allowed = CONSENT_MOVES[person.consent_status]
        if status not in allowed:
            raise CaseRuleBroken("consent_sequence", f"consent of {person.display_name} is {person.consent_status}: "
                                 f"it can become {', '.join(allowed) or 'nothing else'}, not {status}")
        if method == "via_officer_in_charge" and self.initiated_by != "offender_led":
            raise CaseRuleBroken("officer_in_charge_offender_led",
                                 "consent via the officer in charge is recorded only in offender-led cases")
        if status == "given" and not method:
            raise CaseRuleBroken("consent_method", "say how consent was given: written, verbal or via the officer in charge")
        record = ConsentRecord(status, method, at, by, note)
        person.consent_status, person.consent_method, person.consent_at = status, method, at
        person.process_stopped = status == "withdrawn" or (person.process_stopped and status != "given")
        person.consent_history.append(record)
        return record

    def record_information_offered(self, participant_id: str, at: datetime) -> list[Clock]:
        """Impartial information about RJ given to this person; returns the clocks it meets."""
        self.require_open()
        person = self.participant(participant_id)
        person.information_offered_at = person.information_offered_at or at
        return self._meet_clocks(participant_id, "rj_information", at)

    def record_support_referral(self, participant_id: str, at: datetime) -> list[Clock]:
        self.require_open()
        person = self.participant(participant_id)
        if person.role != "victim":
            raise CaseRuleBroken("victim_support_referral", "referral to victim support is recorded for victims")
        person.support_referral_at = person.support_referral_at or at
        return self._meet_clocks(participant_id, "support_referral", at)

    def _meet_clocks(self, participant_id: str, kind: str, at: datetime) -> list[Clock]:
        met = [c for c in self.clocks if c.participant_id == participant_id and c.kind == kind and c.met_at is None]
        for clock in met:
            clock.met_at = at
        return met

    def choose_intervention(self, kind: str) -> None:
        self.require_open()
        if STAGES.index(self.stage) > STAGES.index("preparation"):
            raise CaseRuleBroken("intervention_not_started", "the kind of intervention is chosen before it starts")
        self.intervention_kind = kind

    def allocate(self, facilitator_ids: list[str], at: datetime, by: str) -> list[Allocation]:
        self.require_open()
        if self.stage == "referral_received":
            raise CaseRuleBroken("triage_started", "facilitators are allocated once eligibility is being decided")
        self.facilitators = [Allocation(fid, i == 0, at, by) for i, fid in enumerate(facilitator_ids)]
        return self.facilitators

    def add_outcome_item(self, kind: str, description: str, owner_participant_id: str, due_on: date,
                         at: datetime, by: str) -> OutcomeItem:
        self.require_open()
        if self.stage not in ("outcome_agreement", "follow_up"):
            raise CaseRuleBroken("outcome_agreement_stage",
                                 "outcome items are recorded at the outcome agreement or follow-up stage")
        owner = self.participant(owner_participant_id)
        if owner.role != "responsible_person" and kind in ("apology", "reparation", "community_work",
                                                           "financial_restitution"):
            raise CaseRuleBroken("owner_is_responsible_person",
                                 f"{kind.replace('_', ' ')} is owed by a responsible person, not a {owner.role}")
        item = OutcomeItem(str(uuid.uuid4()), kind, description, owner_participant_id, due_on, "pending", by, at)
        self.outcome_items.append(item)
        self.no_agreement_reason = ""
        return item

    def update_outcome_item(self, item_id: str, status: str, at: datetime) -> OutcomeItem:
        self.require_open()
        item = self.outcome_item(item_id)
        if item.status != "pending":
            raise CaseRuleBroken("outcome_item_pending", f"outcome item {item_id} is already {item.status}")
        item.status, item.updated_at = status, at
        return item

    def record_no_agreement(self, reason: str) -> None:
        self.require_open()
        if self.stage != "outcome_agreement":
            raise CaseRuleBroken("outcome_agreement_stage", "'no agreement' is recorded at the outcome agreement stage")
        if self.outcome_items:
            raise CaseRuleBroken("no_items_for_no_agreement", "outcome items are already recorded")
        self.no_agreement_reason = reason

    def record_follow_up(self, follow_up: FollowUp) -> None:
        self.require_open()
        if self.stage != "follow_up":
            raise CaseRuleBroken("follow_up_stage", "follow-up is recorded at the follow-up stage")
        self.follow_up = follow_up

    def set_retention_hold(self, hold: bool) -> None:
        # A retention action: allowed on a closed case too.
        self.retention_hold = hold


# Consent moves per person: asked, answered, withdrawn at any time after being given, asked again.
CONSENT_MOVES: dict[str, tuple[str, ...]] = {
    "not_requested": ("requested", "given", "declined"),
    "requested": ("given", "declined", "expired"),
    "given": ("withdrawn", "expired"),
    "declined": ("requested", "given"),
    "withdrawn": ("requested", "given"),
    "expired": ("requested", "given"),
}


def seriousness_of(offence_category: str, offence_flags: list[str]) -> str:
    """How demanding the case is for facilitators: sensitive and complex cases (domestic abuse,
    sexual offences, stalking) and serious ones (serious violence, hate crime, robbery, violence
    against the person) need advanced training."""
    flags = set(offence_flags)
    if flags & {"domestic_abuse", "sexual_offence"} or offence_category in ("sexual_offence", "stalking_and_harassment"):
        return "sensitive_complex"
    if flags & {"serious_violence", "hate_crime"} or offence_category in ("robbery", "violence_against_the_person"):
        return "serious"
    return "standard"


def new_participant(role: str, given_name: str, family_name: str, date_of_birth: str | None, age: int | None,
                    vulnerabilities: list[str], consent_to_contact: bool, contact: dict[str, str],
                    today: date) -> CaseParticipant:
    years = _age_on(date_of_birth, age, today)
    return CaseParticipant(
        participant_id=str(uuid.uuid4()), role=role, given_name=given_name, family_name=family_name,
        date_of_birth=date_of_birth, age=age, is_youth=years is not None and years < 18,
        vulnerabilities=list(vulnerabilities), consent_to_contact=consent_to_contact,
        preferred_channel=contact.get("preferred_channel", ""), contact=dict(contact))


def _age_on(born: str | None, age: int | None, day: date) -> int | None:
    if born:
        b = date.fromisoformat(born)
        return day.year - b.year - ((day.month, day.day) < (b.month, b.day))
    return age


def open_case(referral_id: str, county: str, agency_id: str, received_at: datetime, referral: dict[str, Any],
              opened_at: datetime) -> Case:
    """A new case in the first stage, from the referral as the agency sent it."""
    if not isinstance(referral_id, str) or not referral_id.strip() or referral_id == "None":
        raise InvalidReferral("the event names no referral")
    try:
        offence = referral["offence"]
        flags = [f for f in ("domestic_abuse", "sexual_offence", "hate_crime", "serious_violence") if offence.get(f)]
        participants = []
        for p in referral["participants"]:
            if p.get("role") not in PARTICIPANT_ROLES:
                raise ValueError(f"participant role {p.get('role')!r}")
            for text_field in ("given_name", "family_name"):
                if not isinstance(p.get(text_field, ""), str):
                    raise ValueError(f"participant {text_field}")
            participants.append(new_participant(
                p["role"], p.get("given_name", ""), p.get("family_name", ""), p.get("date_of_birth"), p.get("age"),
                list(p.get("vulnerabilities") or []), bool(p.get("consent_to_contact")), dict(p.get("contact") or {}),
                received_at.date()))
        reported = offence.get("reported_date")
        if reported is not None:
            date.fromisoformat(reported)
        case = Case(
            case_id=str(uuid.uuid4()), referral_id=referral_id, county=county, stage="referral_received",
            initiated_by=referral["initiated_by"], offence_type=offence["type"],
            offence_category=offence["category"], offence_date=offence["date"], offence_flags=flags,
            referring_agency_id=agency_id, agency_reference=referral["agency_reference"], opened_at=opened_at,
            offence_reported_date=reported, participants=participants,
            history=[StageChange("referral_received", opened_at, "system:referrals", "referral received")])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InvalidReferral(f"referral {referral_id} cannot open a case: missing or malformed {exc}") from None
    if not case.participants:
        raise InvalidReferral(f"referral {referral_id} has no participants")
    return case
