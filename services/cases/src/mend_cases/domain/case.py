"""The case file as it opens from a referral. Plain Python: no framework imports."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

STAGES = (
    "referral_received", "eligibility", "contact_and_information", "consent", "risk_and_safety", "preparation",
    "intervention", "outcome_agreement", "follow_up", "closed",
)
CASE_READERS = ("coordinator", "manager", "auditor", "admin")
PARTICIPANT_ROLES = ("victim", "responsible_person", "supporter", "parent_or_guardian")


class InvalidReferral(ValueError):
    """The referral_received event cannot become a case (a poison message)."""


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


@dataclass
class StageChange:
    stage: str
    at: datetime
    by: str
    reason: str


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
    participants: list[CaseParticipant] = field(default_factory=list)
    history: list[StageChange] = field(default_factory=list)
    allocated_facilitators: list[str] = field(default_factory=list)

    def visible_to(self, principal) -> bool:
        if self.county not in principal.counties:
            return False
        if principal.has_any_role(*CASE_READERS):
            return True
        # A facilitator sees only the cases allocated to them.
        return "facilitator" in principal.roles and principal.subject in self.allocated_facilitators


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
            age = _age_on(p.get("date_of_birth"), p.get("age"), received_at.date())
            contact = dict(p.get("contact") or {})
            participants.append(CaseParticipant(
                participant_id=str(uuid.uuid4()), role=p["role"], given_name=p.get("given_name", ""),
                family_name=p.get("family_name", ""), date_of_birth=p.get("date_of_birth"), age=p.get("age"),
                is_youth=age is not None and age < 18, vulnerabilities=list(p.get("vulnerabilities") or []),
                consent_to_contact=bool(p.get("consent_to_contact")),
                preferred_channel=contact.get("preferred_channel", ""), contact=contact))
        case = Case(
            case_id=str(uuid.uuid4()), referral_id=referral_id, county=county, stage="referral_received",
            initiated_by=referral["initiated_by"], offence_type=offence["type"],
            offence_category=offence["category"], offence_date=offence["date"], offence_flags=flags,
            referring_agency_id=agency_id, agency_reference=referral["agency_reference"], opened_at=opened_at,
            participants=participants,
            history=[StageChange("referral_received", opened_at, "system:referrals", "referral received")])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise InvalidReferral(f"referral {referral_id} cannot open a case: missing or malformed {exc}") from None
    if not case.participants:
        raise InvalidReferral(f"referral {referral_id} has no participants")
    return case
