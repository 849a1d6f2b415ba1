"""A referral as a partner agency sends it, the rules it must meet, and its status.

parse_draft() takes plain data (from JSON or from a proto message turned into a dict) and
either returns a ReferralDraft or raises ValidationFailed naming every bad field and its rule.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from mend_common.errors import Violations

from .vocabulary import (CASE_CLOSURE_REASONS, CONTACT_CHANNELS, ELIGIBILITY_DECISIONS, ENHANCED_RIGHTS_VULNERABILITIES,
                         INITIATORS, OFFENCE_CATEGORIES, OFFENCE_FLAGS, PARTICIPANT_ROLES, ReferralStatus,
                         VULNERABILITIES)

MAX_PARTICIPANTS = 20
REFERENCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 /_.:#-]{0,63}$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
PHONE_RE = re.compile(r"^\+?[0-9 ()-]{7,20}$")
UK_POSTCODE_RE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$", re.IGNORECASE)
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

TOP_FIELDS = {"agency_reference", "county", "offence", "initiated_by", "participants", "reason"}
OFFENCE_FIELDS = {"type", "category", "date", "reported_date", *OFFENCE_FLAGS}
PARTICIPANT_FIELDS = {"role", "given_name", "family_name", "date_of_birth", "age", "contact", "vulnerabilities",
                      "consent_to_contact", "notes"}
CONTACT_FIELDS = {"email", "phone", "address", "postcode", "preferred_channel"}


@dataclass(frozen=True)
class ContactDetails:
    email: str = ""
    phone: str = ""
    address: str = ""
    postcode: str = ""
    preferred_channel: str = ""


@dataclass(frozen=True)
class Participant:
    role: str
    given_name: str
    family_name: str
    date_of_birth: str | None
    age: int | None
    contact: ContactDetails
    vulnerabilities: tuple[str, ...]
    consent_to_contact: bool
    notes: str = ""

    def age_on(self, day: date) -> int | None:
        if self.date_of_birth:
            born = date.fromisoformat(self.date_of_birth)
            return day.year - born.year - ((day.month, day.day) < (born.month, born.day))
        return self.age

    def is_youth_on(self, day: date) -> bool:
        age = self.age_on(day)
        return age is not None and age < 18

    @property
    def has_enhanced_rights(self) -> bool:
        return any(v in ENHANCED_RIGHTS_VULNERABILITIES for v in self.vulnerabilities)


@dataclass(frozen=True)
class Offence:
    type: str
    category: str
    date: str
    reported_date: str | None
    domestic_abuse: bool = False
    sexual_offence: bool = False
    hate_crime: bool = False
    serious_violence: bool = False

    @property
    def flags(self) -> list[str]:
        return [flag for flag in OFFENCE_FLAGS if getattr(self, flag)]


@dataclass(frozen=True)
class ReferralDraft:
    agency_reference: str
    county: str
    offence: Offence
    initiated_by: str
    participants: tuple[Participant, ...]
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        # Built by hand and once: dataclasses.asdict deep-copies recursively and was a large part
        # of an intake call's CPU. Same shape as asdict (tests check that).
        cached = self.__dict__.get("_as_dict")
        if cached is None:
            o = self.offence
            cached = {
                "agency_reference": self.agency_reference, "county": self.county,
                "offence": {"type": o.type, "category": o.category, "date": o.date, "reported_date": o.reported_date,
                            "domestic_abuse": o.domestic_abuse, "sexual_offence": o.sexual_offence,
                            "hate_crime": o.hate_crime, "serious_violence": o.serious_violence},
                "initiated_by": self.initiated_by,
                "participants": [{
                    "role": p.role, "given_name": p.given_name, "family_name": p.family_name,
                    "date_of_birth": p.date_of_birth, "age": p.age,
                    "contact": {"email": p.contact.email, "phone": p.contact.phone, "address": p.contact.address,
                                "postcode": p.contact.postcode, "preferred_channel": p.contact.preferred_channel},
                    "vulnerabilities": list(p.vulnerabilities), "consent_to_contact": p.consent_to_contact,
                    "notes": p.notes} for p in self.participants],
                "reason": self.reason,
            }
            object.__setattr__(self, "_as_dict", cached)
        return cached

    def fingerprint(self) -> str:
        """Identifies the content, so a replayed request can be told from a different one."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# -- parsing and validation ---------------------------------------------------------------
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


class _Reader:
    """Reads typed fields from untrusted data, recording every violation under its path."""

    def __init__(self, violations: Violations):
        self.v = violations

    def obj(self, data: Any, path: str, allowed: set[str]) -> dict:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.v.add(path, "must be an object")
            return {}
        for key in sorted(set(data) - allowed):
            self.v.add(f"{path}.{key}" if path else str(key), "is not a recognised field")
        return data

    def text(self, data: dict, key: str, path: str, *, required: bool, max_len: int, min_len: int = 1) -> str:
        value = data.get(key)
        if value is None or value == "":
            if required:
                self.v.add(path, "is required")
            return ""
        if not isinstance(value, str):
            self.v.add(path, "must be a string")
            return ""
        value = value.strip()
        if not value:
            # Only whitespace: the same as not given (an optional field stays optional).
            if required:
                self.v.add(path, "is required")
            return ""
        if CONTROL_RE.search(value):
            self.v.add(path, "must not contain control characters")
        elif len(value) > max_len:
            self.v.add(path, f"must be at most {max_len} characters")
        elif len(value) < min_len:
            self.v.add(path, f"must be at least {min_len} characters" if value else "is required")
        return value

    def choice(self, data: dict, key: str, path: str, options: tuple[str, ...], *, required: bool) -> str:
        value = data.get(key)
        if value is None or value == "":
            if required:
                self.v.add(path, "is required")
            return ""
        if not isinstance(value, str) or value not in options:
            self.v.add(path, f"must be one of: {', '.join(options)}")
            return ""
        return value

    def flag(self, data: dict, key: str, path: str) -> bool:
        value = data.get(key, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.v.add(path, "must be true or false")
            return False
        return value

    def day(self, data: dict, key: str, path: str, *, required: bool, today: date) -> date | None:
        value = data.get(key)
        if value is None or value == "":
            if required:
                self.v.add(path, "is required")
            return None
        if not isinstance(value, str) or not DATE_RE.fullmatch(value):
            self.v.add(path, "must be a date written YYYY-MM-DD")
            return None
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            self.v.add(path, "must be a real calendar date")
            return None
        if parsed > today:
            self.v.add(path, "must not be in the future")
        elif parsed.year < 1900:
            self.v.add(path, "must be after 1900")
        return parsed


def parse_draft(data: Any, *, today: date) -> ReferralDraft:
    v = Violations()
    r = _Reader(v)
    top = r.obj(data, "", TOP_FIELDS)
    if not isinstance(data, dict):
        v.raise_if_any()

    reference = r.text(top, "agency_reference", "agency_reference", required=True, max_len=64)
    if reference and not REFERENCE_RE.match(reference):
        v.add("agency_reference", "must start with a letter or digit and use only letters, digits, spaces and / _ . : # -")
    county = r.text(top, "county", "county", required=True, max_len=64)
    if county and not re.fullmatch(r"[a-z][a-z0-9-]{1,63}", county):
        v.add("county", "must be a county code: lower-case letters, digits and hyphens")

    off = r.obj(top.get("offence"), "offence", OFFENCE_FIELDS)
    if top.get("offence") is None:
        v.add("offence", "is required")
    offence_date = r.day(off, "date", "offence.date", required=True, today=today)
    reported = r.day(off, "reported_date", "offence.reported_date", required=False, today=today)
    if offence_date and reported and reported < offence_date:
        v.add("offence.reported_date", "must not be before offence.date")
    offence = Offence(
        type=r.text(off, "type", "offence.type", required=True, max_len=120, min_len=2),
        category=r.choice(off, "category", "offence.category", OFFENCE_CATEGORIES, required=True),
        date=offence_date.isoformat() if offence_date else "",
        reported_date=reported.isoformat() if reported else None,
        **{flag: r.flag(off, flag, f"offence.{flag}") for flag in OFFENCE_FLAGS},
    )
    initiated_by = r.choice(top, "initiated_by", "initiated_by", INITIATORS, required=True)

    raw_participants = top.get("participants")
    participants: list[Participant] = []
    if raw_participants is None or raw_participants == []:
        v.add("participants", "must list at least one participant")
    elif not isinstance(raw_participants, list):
        v.add("participants", "must be a list")
    elif len(raw_participants) > MAX_PARTICIPANTS:
        v.add("participants", f"must list at most {MAX_PARTICIPANTS} participants")
    else:
        participants = [_parse_participant(r, item, f"participants[{i}]", today)
                        for i, item in enumerate(raw_participants)]

    roles = [p.role for p in participants]
    if participants and initiated_by == "victim_led" and "victim" not in roles:
        v.add("participants", "a victim-led referral must include the victim")
    if participants and initiated_by == "offender_led" and "responsible_person" not in roles:
        v.add("participants", "an offender-led referral must include the responsible person")
    if "parent_or_guardian" in roles and not any(p.is_youth_on(today) for p in participants if p.role != "parent_or_guardian"):
        v.add("participants", "a parent or guardian may only be listed for a participant under 18")

    reason = r.text(top, "reason", "reason", required=False, max_len=4000)
    v.raise_if_any()
    return ReferralDraft(agency_reference=reference, county=county, offence=offence, initiated_by=initiated_by,
                         participants=tuple(participants), reason=reason)


def _parse_participant(r: _Reader, raw: Any, path: str, today: date) -> Participant:
    data = r.obj(raw, path, PARTICIPANT_FIELDS)
    role = r.choice(data, "role", f"{path}.role", PARTICIPANT_ROLES, required=True)
    given = r.text(data, "given_name", f"{path}.given_name", required=False, max_len=100)
    family = r.text(data, "family_name", f"{path}.family_name", required=False, max_len=100)
    if isinstance(raw, dict) and not given and not family:
        r.v.add(f"{path}.given_name", "a participant needs a given name or a family name")
    born = r.day(data, "date_of_birth", f"{path}.date_of_birth", required=False, today=today)
    # 0 means "not given" (the proto default); an infant is recorded by date of birth.
    raw_age = data.get("age")
    age = None
    if isinstance(raw_age, bool) or raw_age not in (None, 0):
        if isinstance(raw_age, bool) or not isinstance(raw_age, int) or not 1 <= raw_age <= 120:
            r.v.add(f"{path}.age", "must be a whole number of years from 1 to 120")
        else:
            age = raw_age
    if born and age is not None:
        actual = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        if abs(actual - age) > 1:
            r.v.add(f"{path}.age", "does not match date_of_birth")

    contact_raw = data.get("contact")
    c = r.obj(contact_raw, f"{path}.contact", CONTACT_FIELDS)
    contact = ContactDetails(
        email=r.text(c, "email", f"{path}.contact.email", required=False, max_len=254),
        phone=r.text(c, "phone", f"{path}.contact.phone", required=False, max_len=20),
        address=r.text(c, "address", f"{path}.contact.address", required=False, max_len=300),
        postcode=r.text(c, "postcode", f"{path}.contact.postcode", required=False, max_len=8).upper(),
        preferred_channel=r.choice(c, "preferred_channel", f"{path}.contact.preferred_channel", CONTACT_CHANNELS,
                                   required=False),
    )
    if contact.email and not EMAIL_RE.match(contact.email):
        r.v.add(f"{path}.contact.email", "must be an email address")
    if contact.phone and not PHONE_RE.match(contact.phone):
        r.v.add(f"{path}.contact.phone", "must be a phone number: digits, spaces, brackets, hyphens, optional leading +")
    if contact.postcode and not UK_POSTCODE_RE.match(contact.postcode):
        r.v.add(f"{path}.contact.postcode", "must be a UK postcode")
    needs = {"email": "email", "sms": "phone", "phone": "phone", "letter": "address"}
    needed = needs.get(contact.preferred_channel)
    if needed and not getattr(contact, needed):
        r.v.add(f"{path}.contact.{needed}", f"is required when preferred_channel is {contact.preferred_channel}")

    vulnerabilities: list[str] = []
    raw_v = data.get("vulnerabilities") or []
    if not isinstance(raw_v, list):
        r.v.add(f"{path}.vulnerabilities", "must be a list")
    else:
        for j, item in enumerate(raw_v):
            if not isinstance(item, str) or item not in VULNERABILITIES:
                r.v.add(f"{path}.vulnerabilities[{j}]", f"must be one of: {', '.join(VULNERABILITIES)}")
            elif item in vulnerabilities:
                r.v.add(f"{path}.vulnerabilities[{j}]", "is listed twice")
            else:
                vulnerabilities.append(item)
    return Participant(
        role=role, given_name=given, family_name=family, date_of_birth=born.isoformat() if born else None,
        age=age, contact=contact, vulnerabilities=tuple(vulnerabilities),
        consent_to_contact=r.flag(data, "consent_to_contact", f"{path}.consent_to_contact"),
        notes=r.text(data, "notes", f"{path}.notes", required=False, max_len=2000),
    )


@dataclass
class Referral:
    referral_id: str
    agency_id: str
    county: str
    agency_reference: str
    request_id: str
    fingerprint: str
    status: str
    received_at: datetime
    draft: dict[str, Any]
    case_id: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def can_be_seen_by_agency(self, agency_id: str) -> bool:
        return self.agency_id == agency_id


# -- status: a referral follows its case --------------------------------------------------------
# A transition is (the status or statuses it moves from, the status it moves to). The cases
# service's events arrive on different queues, in any order, so every rule climbs one ladder:
#     received < case_opened < accepted < closed < rejected
# and moves a referral up to its status from every rung below, never down. The end state is then
# the highest rung any of the events reached, whatever order they came in (tests check both).
STATUS_LADDER = (ReferralStatus.RECEIVED, ReferralStatus.CASE_OPENED, ReferralStatus.ACCEPTED,
                 ReferralStatus.CLOSED, ReferralStatus.REJECTED)

# A case opening moves a received referral on; any later status already implies it.
CASE_OPENED_TRANSITION = (ReferralStatus.RECEIVED, ReferralStatus.CASE_OPENED)
ELIGIBILITY_ACCEPTED_TRANSITION = ((ReferralStatus.RECEIVED, ReferralStatus.CASE_OPENED), ReferralStatus.ACCEPTED)
# A rejection wins over everything: even a case already closed ends as rejected.
ELIGIBILITY_REJECTED_TRANSITION = ((ReferralStatus.RECEIVED, ReferralStatus.CASE_OPENED, ReferralStatus.ACCEPTED,
                                    ReferralStatus.CLOSED), ReferralStatus.REJECTED)
CASE_CLOSED_AFTER_REJECTION_TRANSITION = ELIGIBILITY_REJECTED_TRANSITION
# A rejected referral stays rejected when its case closes.
CASE_CLOSED_TRANSITION = ((ReferralStatus.RECEIVED, ReferralStatus.CASE_OPENED, ReferralStatus.ACCEPTED),
                          ReferralStatus.CLOSED)

MAX_DETAIL_CHARS = 2000


class MalformedCaseEvent(ValueError):
    """A case event this service cannot read (a poison message)."""


@dataclass(frozen=True)
class StatusChange:
    """What one case event asks of its referral's status."""
    referral_id: str
    case_id: str
    transition: tuple
    detail: str         # kept in the referral's history: the referrer reads it
    note: str           # the audit record's reason


def case_event_change(event_type: str, payload: Any) -> StatusChange:
    """Read a cases service event (case_opened, eligibility_decided, case_closed) as the status
    change it asks for. Raises MalformedCaseEvent for any other type or a payload that breaks
    the event's contract."""
    reader = _CASE_EVENT_READERS.get(event_type)
    if reader is None:
        raise MalformedCaseEvent(f"{event_type!r} is not a case event a referral follows")
    if not isinstance(payload, dict):
        raise MalformedCaseEvent(f"{event_type} payload must be an object")
    referral_id, case_id = payload.get("referral_id"), payload.get("case_id")
    if not isinstance(referral_id, str) or not referral_id or not isinstance(case_id, str) or not case_id:
        raise MalformedCaseEvent(f"{event_type} event lacks referral_id or case_id")
    transition, detail, note = reader(payload, case_id)
    return StatusChange(referral_id, case_id, transition, detail, note)


def _case_opened(payload: dict, case_id: str) -> tuple[tuple, str, str]:
    return CASE_OPENED_TRANSITION, f"case {case_id} opened", "case_opened"


def _eligibility_decided(payload: dict, case_id: str) -> tuple[tuple, str, str]:
    decision = _event_choice(payload, "decision", ELIGIBILITY_DECISIONS, "eligibility_decided")
    reason = _event_text(payload, "reason", "eligibility_decided")
    _event_moment(payload, "decided_at", "eligibility_decided")
    if decision == "accepted":
        return ELIGIBILITY_ACCEPTED_TRANSITION, "accepted for restorative justice", "eligibility_decided: accepted"
    return ELIGIBILITY_REJECTED_TRANSITION, _not_accepted(reason), "eligibility_decided: rejected"


def _not_accepted(reason: str) -> str:
    # The same words whichever of eligibility_decided or case_closed arrives first.
    return f"not accepted for restorative justice: {reason}" if reason else "not accepted for restorative justice"


def _case_closed(payload: dict, case_id: str) -> tuple[tuple, str, str]:
    reason = _event_choice(payload, "reason", CASE_CLOSURE_REASONS, "case_closed")
    after_rejection = payload.get("after_rejection")
    if not isinstance(after_rejection, bool):
        raise MalformedCaseEvent("case_closed after_rejection must be true or false")
    _event_moment(payload, "closed_at", "case_closed")
    said = reason.replace("_", " ")
    if after_rejection:
        # The rejection reason travels with the closure too, so the referrer reads it even when
        # this event is handled before eligibility_decided.
        why = _event_text(payload, "rejection_reason", "case_closed") if "rejection_reason" in payload else ""
        return (CASE_CLOSED_AFTER_REJECTION_TRANSITION, _not_accepted(why), f"case_closed: {reason}, after rejection")
    return CASE_CLOSED_TRANSITION, f"case {case_id} closed ({said})", f"case_closed: {reason}"


_CASE_EVENT_READERS = {
    "case_opened": _case_opened,
    "eligibility_decided": _eligibility_decided,
    "case_closed": _case_closed,
}


def _event_choice(payload: dict, key: str, options: tuple[str, ...], event_type: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or value not in options:
        raise MalformedCaseEvent(f"{event_type} {key} must be one of: {', '.join(options)}")
    return value


def _event_text(payload: dict, key: str, event_type: str) -> str:
    """Free text from another service, made safe to keep and show: no control characters (a NUL
    byte cannot even be stored in PostgreSQL), bounded."""
    value = payload.get(key)
    if not isinstance(value, str):
        raise MalformedCaseEvent(f"{event_type} {key} must be a string")
    return CONTROL_RE.sub("", value).strip()[:MAX_DETAIL_CHARS]


def _event_moment(payload: dict, key: str, event_type: str) -> datetime:
    value = payload.get(key)
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise MalformedCaseEvent(f"{event_type} {key} must be an ISO 8601 date and time") from None
