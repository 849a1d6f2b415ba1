"""Use cases of the notifications service.

Events from the other services become messages: one row per (event or reminder, recipient,
channel), queued in the same transaction as the event's claim, so a redelivered event adds
nothing. A dispatcher then sends what is due, records each outcome at once, retries temporary
failures with backoff and fails a message for good (visible, and published to the dead-letter
queue) after the last attempt. Participants get messages only by channels they consented to,
outside their quiet hours, and never with another party's details unless a coordinator
released them."""
from __future__ import annotations

import base64
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Callable, Iterable, Sequence
from zoneinfo import ZoneInfo

from prometheus_client import Counter, Histogram

from mend_common.auth import Principal
from mend_common.envelope import Envelope, new_event
from mend_common.errors import NotFound, PermissionDenied, Unavailable, ValidationFailed, Violations

from ..domain import policy
from ..domain.calendar import meeting_ics
from ..domain.default_templates import DEFAULT_TEMPLATES
from ..domain.letters import letter_pdf
from ..domain.policy import ContactPreferences
from ..domain.templates import Template, TemplateProblem, date_text, local_text, render, validate_template
from ..domain.vocabulary import CONTEXT_FIELDS, LABELS, LANGUAGES, MESSAGE_TYPES, PARTICIPANT_CHANNELS, label
from .ports import CaseContacts, Senders

log = logging.getLogger(__name__)
SERVICE = "notifications"
LONDON = ZoneInfo("Europe/London")
QUEUED = Counter("mend_notifications_queued_total", "Messages queued", ["message_type", "channel"])
SENT = Counter("mend_notifications_sent_total", "Messages accepted by the channel", ["channel"])
FAILED = Counter("mend_notifications_failed_total", "Messages failed for good", ["channel"])
RETRIED = Counter("mend_notifications_retried_total", "Temporary delivery failures, retried later", ["channel"])
WITHHELD = Counter("mend_notifications_withheld_total", "Messages not sent, and why", ["reason"])
SEND_TIME = Histogram("mend_notifications_send_seconds", "Time for one channel send", ["channel"],
                      buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

RELEASABLE_FIELDS = ("given_name", "family_name")
READERS = ("coordinator", "manager", "auditor")
WRITERS = ("coordinator", "manager")


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Settings:
    reminder_hours: tuple[int, ...] = (48, 24)
    lease_seconds: float = 60.0
    dispatch_batch: int = 50
    max_attempts: int = policy.MAX_ATTEMPTS
    letter_font: str | None = None
    service_name: str = "the Restorative Justice service"
    service_email: str = "rj@mend.invalid"
    service_phone: str = "0300 000 0000"
    consent_reply_days: int = 14


@dataclass(frozen=True)
class Recipient:
    kind: str               # participant, facilitator, staff, referrer
    recipient_id: str
    name: str
    prefs: ContactPreferences
    role: str = ""


# -- formatting ---------------------------------------------------------------------------------
def _template(uow, message_type: str, channel: str, language: str) -> Template | None:
    """The newest saved version, else the built-in one; Welsh falls back to English only when no
    Welsh version exists at all."""
    for lang in dict.fromkeys((language, "en")):
        row = uow.repo.latest_template(message_type, channel, lang)
        if row is not None:
            return Template(row.message_type, row.channel, row.language, row.version, row.subject, row.body)
        built_in = DEFAULT_TEMPLATES.get((message_type, channel, lang))
        if built_in is not None:
            return built_in
    return None


def _address(recipient: Recipient, channel: str, webhook_url: str = "") -> str:
    p = recipient.prefs
    if channel == "email":
        return p.email
    if channel == "sms":
        return p.phone
    if channel == "letter":
        return json.dumps({"lines": [recipient.name, *[line for line in p.address.splitlines() if line.strip()]],
                           "postcode": p.postcode})
    return webhook_url


def _queue(uow, *, event_id: str, dedupe: str, county: str, case_id: str, message_type: str, recipient: Recipient,
           channels: Iterable[str], context: dict, now: datetime, attachments: Sequence[dict] = (),
           leak_check: Callable[[str], list[str]] | None = None, webhook_url: str = "") -> int:
    """Render and queue one message per channel for one recipient. Returns how many were new."""
    rows = []
    for channel in channels:
        template = _template(uow, message_type, channel, recipient.prefs.language)
        if template is None:
            WITHHELD.labels("no_template").inc()
            log.warning("no %s template for %s; nothing sent to %s", channel, message_type, recipient.recipient_id)
            continue
        try:
            # Optional fields (another party's released name, an arrival note) stay undefined.
            rendered = render(template, {k: context[k] for k in CONTEXT_FIELDS[message_type] if k in context})
        except TemplateProblem as exc:
            WITHHELD.labels("template_error").inc()
            log.error("template %s/%s/%s v%s failed: %s", message_type, channel, template.language, template.version,
                      exc.problems)
            continue
        attached = "".join(base64.b64decode(a["base64"]).decode("utf-8", "replace") for a in attachments
                           if a["mime"].startswith("text/")) if channel == "email" else ""
        if leak_check is not None and (leaked := leak_check("\n".join((rendered.subject, rendered.body, attached)))):
            # Defence in depth: a template or context slip must not reveal the other party.
            WITHHELD.labels("unreleased_detail").inc()
            log.error("message %s to %s withheld: it named %d unreleased detail(s) of another party",
                      message_type, recipient.recipient_id, len(leaked))
            continue
        hold_until = policy.next_send_time(now, recipient.prefs, channel) if recipient.kind == "participant" else now
        rows.append({
            "message_id": str(uuid.uuid4()), "dedupe_key": f"{dedupe}:{recipient.kind}:{recipient.recipient_id}:{channel}",
            "event_id": event_id, "county": county, "case_id": case_id, "message_type": message_type,
            "channel": channel, "recipient_kind": recipient.kind, "recipient_id": recipient.recipient_id,
            "address": _address(recipient, channel, webhook_url), "language": template.language,
            "template_version": template.version, "subject": rendered.subject, "body": rendered.body,
            "attachments": json.dumps(list(attachments) if channel == "email" else []), "status": "queued",
            "attempts": 0, "next_attempt_at": hold_until, "claimed_until": None, "last_error": "",
            "provider_ref": "", "created_at": now, "sent_at": None, "delivered_at": None})
    added = set(uow.repo.add_messages(rows))
    for row in rows:
        if row["dedupe_key"] in added:
            QUEUED.labels(message_type, row["channel"]).inc()
    return len(added)


def _base(settings: Settings, recipient: Recipient) -> dict:
    return {"service_name": settings.service_name, "service_email": settings.service_email,
            "service_phone": settings.service_phone, "recipient_name": recipient.name or "colleague"}


def _day(at: datetime) -> str:
    local = at.astimezone(LONDON)
    return f"{local.day} {local:%B %Y}"


# -- who gets what ------------------------------------------------------------------------------
def _participant_prefs(contact: dict, saved) -> ContactPreferences:
    """Saved preferences win; otherwise what the referral said (consent to contact and a
    preferred channel), which is all the consent there is."""
    if saved is not None:
        channels = frozenset(json.loads(saved.channels))
        language = saved.language
        quiet = (_parse_time(saved.quiet_start), _parse_time(saved.quiet_end))
    else:
        preferred = contact.get("preferred_channel") or ""
        channels = frozenset({preferred}) if contact.get("consent_to_contact") and preferred in PARTICIPANT_CHANNELS \
            else frozenset()
        language, quiet = "en", (None, None)
    return ContactPreferences(channels=channels, language=language, quiet_start=quiet[0], quiet_end=quiet[1],
                              email=contact.get("email", ""), phone=contact.get("phone", ""),
                              address=contact.get("address", ""), postcode=contact.get("postcode", ""))


def _parse_time(text: str) -> time | None:
    return time.fromisoformat(text) if text else None


def participant_recipients(uow, contacts: dict, ids: Iterable[str] | None = None) -> list[Recipient]:
    saved = uow.repo.preferences(contacts["case_id"])
    wanted = set(ids) if ids is not None else None
    found = []
    for p in contacts["participants"]:
        if wanted is not None and p["participant_id"] not in wanted:
            continue
        if p.get("process_stopped"):
            WITHHELD.labels("process_stopped").inc()
            continue       # consent withdrawn: nothing more goes to this person
        name = " ".join(x for x in (p.get("given_name", ""), p.get("family_name", "")) if x)
        found.append(Recipient("participant", p["participant_id"], name,
                               _participant_prefs(p, saved.get(p["participant_id"])), role=p.get("role", "")))
    return found


def _parties(contacts: dict) -> dict[str, dict]:
    return {p["participant_id"]: {k: p.get(k, "") for k in ("given_name", "family_name", "email", "phone", "address",
                                                           "postcode")}
            for p in contacts["participants"]}


def _participant_context(uow, contacts: dict, recipient: Recipient) -> tuple[dict, Callable[[str], list[str]]]:
    """other_party_name only when a coordinator released it to this recipient, and a check of
    the rendered text for any detail of another party that was not."""
    parties, released = _parties(contacts), uow.repo.releases(contacts["case_id"])
    names = policy.other_party_names(recipient.recipient_id, parties, released)
    context = {"other_party_name": " and ".join(names)} if names else {}
    return context, lambda text: policy.leaked_details(text, recipient.recipient_id, parties, released)


def staff_recipients(uow, county: str, *, role: str | None = None, subjects: list[str] | None = None,
                     kind: str = "staff") -> list[Recipient]:
    return [Recipient(kind, r.subject, r.name, ContactPreferences(channels=frozenset({"email"}), language=r.language,
                                                                  email=r.email))
            for r in uow.repo.staff(county, role=role, subjects=subjects)]


# -- events from the other services ---------------------------------------------------------------
def _claimed(uow, consumer: str, envelope: Envelope) -> bool:
    return envelope.event_id in uow.claim_events(consumer, [envelope.event_id])


def on_referral_event(uow_factory: Callable, envelope: Envelope, consumer: str, settings: Settings = Settings()) -> int:
    """referral_received, case_opened, eligibility_decided, case_closed: the referring agency
    hears how its referral is going (a signed webhook, and email for the decision)."""
    p, now = envelope.payload, _now()
    status, detail = {
        "referral_received": ("received", "The referral was received."),
        "case_opened": ("case_opened", "A case was opened for the referral."),
        "eligibility_decided": (
            "accepted" if p.get("decision") == "accepted" else "rejected",
            "The referral was accepted for restorative justice." if p.get("decision") == "accepted"
            else f"The referral was not accepted: {p.get('reason') or 'no reason given'}"),
        "case_closed": ("closed", f"The case was closed ({p.get('reason', '')})."),
    }[envelope.type]
    with uow_factory() as uow:
        if not _claimed(uow, consumer, envelope):
            return 0
        referral_id = str(p.get("referral_id", ""))
        if envelope.type == "referral_received":
            uow.repo.remember_referral({"referral_id": referral_id, "agency_id": str(p.get("agency_id", "")),
                                        "county": envelope.county,
                                        "agency_reference": str((p.get("referral") or {}).get("agency_reference", "")),
                                        "case_id": None})
        elif envelope.type == "case_opened":
            uow.repo.remember_referral({"referral_id": referral_id, "agency_id": str(p.get("agency_id", "")),
                                        "county": envelope.county, "agency_reference": str(p.get("agency_reference", "")),
                                        "case_id": str(p.get("case_id", ""))})
            uow.repo.link_case(referral_id, str(p.get("case_id", "")))
        # The cases service's events name the referrer, so they need not wait for referral_received.
        ref = uow.repo.referral(referral_id)
        if ref is None and p.get("agency_id"):
            uow.repo.remember_referral({"referral_id": referral_id, "agency_id": str(p["agency_id"]),
                                        "county": envelope.county, "agency_reference": str(p.get("agency_reference", "")),
                                        "case_id": str(p.get("case_id") or "") or None})
            ref = uow.repo.referral(referral_id)
        if ref is None:
            WITHHELD.labels("unknown_referral").inc()
            log.warning("%s for a referral this service does not know: %s", envelope.type, referral_id)
            return 0
        contact = uow.repo.referrer(ref.agency_id)
        if contact is None or not contact.active:
            WITHHELD.labels("no_referrer_contact").inc()
            return 0
        added = 0
        who = Recipient("referrer", ref.agency_id, "", ContactPreferences(channels=frozenset({"email"}),
                                                                          email=contact.email))
        context = dict(_base(settings, who), recipient_name="colleague", agency_name="your organisation",
                       agency_reference=ref.agency_reference, status=status, detail=detail, updated_on=_day(now),
                       case_reference=_case_reference(ref.case_id or referral_id), decided_on=_day(now),
                       reason=str(p.get("reason") or "no reason was given"))
        if contact.webhook_url:
            added += _queue_webhook(uow, envelope, ref, contact, status, detail, now)
        if contact.email and envelope.type == "eligibility_decided":
            message_type = "case_accepted" if status == "accepted" else "case_rejected"
            added += _queue(uow, event_id=envelope.event_id, dedupe=envelope.event_id, county=envelope.county,
                            case_id=ref.case_id or "", message_type=message_type, recipient=who, channels=["email"],
                            context=context, now=now)
        return added


def _queue_webhook(uow, envelope: Envelope, ref, contact, status: str, detail: str, now: datetime) -> int:
    # The Standard Webhooks payload shape: type, timestamp, data.
    body = json.dumps({"type": f"referral.{status}", "timestamp": envelope.occurred_at,
                       "data": {"referral_id": ref.referral_id, "agency_reference": ref.agency_reference,
                                "status": status, "detail": detail}}, sort_keys=True)
    row = {"message_id": str(uuid.uuid4()), "dedupe_key": f"{envelope.event_id}:referrer:{ref.agency_id}:webhook",
           "event_id": envelope.event_id, "county": envelope.county, "case_id": ref.case_id or "",
           "message_type": "referral_status", "channel": "webhook", "recipient_kind": "referrer",
           "recipient_id": ref.agency_id, "address": contact.webhook_url, "language": "en", "template_version": 0,
           "subject": f"referral.{status}", "body": body, "attachments": "[]", "status": "queued", "attempts": 0,
           "next_attempt_at": now, "claimed_until": None, "last_error": "", "provider_ref": "", "created_at": now,
           "sent_at": None, "delivered_at": None}
    added = len(uow.repo.add_messages([row]))
    if added:
        QUEUED.labels("referral_status", "webhook").inc()
    return added


def on_consent_recorded(uow_factory: Callable, cases: CaseContacts, envelope: Envelope, consumer: str,
                        settings: Settings = Settings()) -> int:
    """Consent requested of a participant: they get the request by the channels they agreed to."""
    p = envelope.payload
    if p.get("status") != "requested":
        with uow_factory() as uow:
            _claimed(uow, consumer, envelope)
        return 0
    contacts = cases.contacts(envelope.county, str(p.get("case_id", "")))    # before the transaction
    now = _now()
    with uow_factory() as uow:
        if not _claimed(uow, consumer, envelope) or contacts is None:
            return 0
        added = 0
        for recipient in participant_recipients(uow, contacts, [str(p.get("participant_id", ""))]):
            context, leak_check = _participant_context(uow, contacts, recipient)
            context.update(_base(settings, recipient), case_reference=_case_reference(contacts["case_id"]),
                           coordinator_name="the restorative justice team",
                           reply_by=date_text((now + timedelta(days=settings.consent_reply_days)).astimezone(LONDON)
                                              .date(), recipient.prefs.language))
            added += _queue(uow, event_id=envelope.event_id, dedupe=envelope.event_id, county=envelope.county,
                            case_id=contacts["case_id"], message_type="consent_requested", recipient=recipient,
                            channels=policy.channels_for(recipient.prefs), context=context, now=now,
                            leak_check=leak_check)
        return added


def _case_reference(case_id: str) -> str:
    """A short reference staff recognise, never the whole id in a letter."""
    return "RJ-" + case_id.replace("-", "")[:8].upper()


STAFF_ALERTS = {
    # event type -> (message type, role told)
    "outcome_item_overdue": ("outcome_item_overdue", "coordinator"),
    "victims_code_breach": ("victims_code_breach", "coordinator"),
    "risk_approval_requested": ("risk_approval_requested", "manager"),
}


def _days_overdue(due_on: str, now: datetime) -> int:
    try:
        return max(0, (now.astimezone(LONDON).date() - datetime.fromisoformat(due_on).date()).days)
    except (TypeError, ValueError):
        return 0


def _labelled(words: dict[str, tuple[str, str]], recipient: Recipient) -> dict:
    """Other services' words (meeting kinds, clocks, levels) as the recipient reads them."""
    return {field: label(kind, word, recipient.prefs.language) if kind in LABELS else word.replace("_", " ")
            for field, (kind, word) in words.items()}


def on_staff_alert(uow_factory: Callable, envelope: Envelope, consumer: str, settings: Settings = Settings()) -> int:
    message_type, role = STAFF_ALERTS[envelope.type]
    p, now = envelope.payload, _now()
    case_id = str(p.get("case_id", ""))
    context = {"case_reference": _case_reference(case_id), "county": envelope.county.replace("-", " ").title(),
               "due_on": str(p.get("due_on", "")), "days_overdue": _days_overdue(str(p.get("due_on", "")), now),
               "started_on": str(p.get("started_on", "")), "met_late": p.get("met_late") is True,
               "assessor_name": str(p.get("assessor", ""))}
    words = {"item_kind": ("item_kind", str(p.get("kind", ""))), "clock": ("clock", str(p.get("clock", ""))),
             "level": ("level", str(p.get("level", "")))}
    with uow_factory() as uow:
        if not _claimed(uow, consumer, envelope):
            return 0
        added = 0
        for recipient in staff_recipients(uow, envelope.county, role=role):
            added += _queue(uow, event_id=envelope.event_id, dedupe=envelope.event_id, county=envelope.county,
                            case_id=case_id, message_type=message_type, recipient=recipient, channels=["email"],
                            context=dict(context, **_base(settings, recipient), **_labelled(words, recipient),
                                         requested_at_local=local_text(now, recipient.prefs.language)),
                            now=now)
        if not added:
            WITHHELD.labels("no_staff_contact").inc()
        return added


# -- meetings -----------------------------------------------------------------------------------
MEETING_EVENTS = {"meeting_scheduled": "meeting_scheduled", "meeting_rescheduled": "meeting_rescheduled",
                  "meeting_cancelled": "meeting_cancelled"}


def _meeting_row(envelope: Envelope, previous, reminder_hours: Sequence[int]) -> dict:
    p = envelope.payload
    # The scheduling service numbers its versions of a meeting (the calendars it serves carry the
    # same UID); without that number, count the versions seen here.
    given = p.get("sequence")
    sequence = given if isinstance(given, int) and not isinstance(given, bool) and given >= 0 else \
        ((previous.sequence + 1) if previous is not None else 0)
    return {"meeting_id": str(p["meeting_id"]), "case_id": str(p["case_id"]), "county": envelope.county,
            # Stored in UTC: SQLite would drop another offset and shift the meeting.
            "kind": str(p.get("kind", "")), "starts_at": datetime.fromisoformat(p["starts_at"]).astimezone(timezone.utc),
            "ends_at": datetime.fromisoformat(p["ends_at"]).astimezone(timezone.utc), "venue_name": str(p.get("venue_name", "")),
            "venue_address": str(p.get("venue_address", "")),
            "participant_ids": json.dumps([str(x) for x in p.get("participant_ids", [])]),
            "facilitator_ids": json.dumps([str(x) for x in p.get("facilitator_ids", [])]),
            "status": "cancelled" if envelope.type == "meeting_cancelled" else "scheduled", "sequence": sequence,
            # A rescheduled meeting is reminded afresh; a cancelled one not at all.
            "reminders_done": "[]", "next_reminder_at": None if envelope.type == "meeting_cancelled"
            else next_reminder_at(datetime.fromisoformat(p["starts_at"]), [], reminder_hours),
            "updated_at": _now()}


def next_reminder_at(starts_at: datetime, done: list[int], reminder_hours: Sequence[int]) -> datetime | None:
    left = [h for h in reminder_hours if h not in done]
    return _aware(starts_at) - timedelta(hours=max(left)) if left else None


def _meeting_context(meeting: dict, recipient: Recipient, settings: Settings, facilitator_names: str) -> dict:
    language = recipient.prefs.language
    return dict(_base(settings, recipient), **_labelled({"meeting_kind": ("meeting_kind", meeting["kind"])}, recipient),
                starts_at_local=local_text(_aware(meeting["starts_at"]), language),
                ends_at_local=local_text(_aware(meeting["ends_at"]), language), venue_name=meeting["venue_name"],
                venue_address=meeting["venue_address"], case_reference=_case_reference(meeting["case_id"]),
                facilitator_names=facilitator_names)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _ics(meeting: dict, recipients: list[Recipient], cancelled: bool, sender: str) -> dict:
    data = meeting_ics(meeting_id=meeting["meeting_id"], sequence=meeting["sequence"],
                       starts_at=_aware(meeting["starts_at"]), ends_at=_aware(meeting["ends_at"]),
                       summary=f"Restorative justice {meeting['kind'].replace('_', ' ')}",
                       location=", ".join(x for x in (meeting["venue_name"], meeting["venue_address"]) if x),
                       description=f"Case {_case_reference(meeting['case_id'])}", organizer_email=sender,
                       attendees=[], method="CANCEL" if cancelled else "REQUEST")
    return {"filename": "meeting.ics", "mime": "text/calendar; method=" + ("CANCEL" if cancelled else "REQUEST"),
            "base64": base64.b64encode(data).decode()}


def _meeting_messages(uow, contacts: dict | None, meeting: dict, message_type: str, dedupe: str, event_id: str,
                      now: datetime, settings: Settings, extra: dict | None = None) -> int:
    """Participants (by their channels) and facilitators (by email) of one meeting."""
    cancelled = message_type == "meeting_cancelled"
    added = 0
    people = []
    if contacts is not None:
        people += participant_recipients(uow, contacts, json.loads(meeting["participant_ids"]))
    facilitators = staff_recipients(uow, meeting["county"], subjects=json.loads(meeting["facilitator_ids"]),
                                    kind="facilitator")
    people += facilitators
    names = ", ".join(f.name for f in facilitators) or "your facilitators"
    attachment = _ics(meeting, people, cancelled, settings.service_email)
    for recipient in people:
        context = dict(_meeting_context(meeting, recipient, settings, names), **(extra or {}))
        leak_check = None
        channels = ["email"]
        if recipient.kind == "participant":
            released, leak_check = _participant_context(uow, contacts, recipient)
            context.update(released)
            channels = policy.channels_for(recipient.prefs)
        added += _queue(uow, event_id=event_id, dedupe=dedupe, county=meeting["county"], case_id=meeting["case_id"],
                        message_type=message_type, recipient=recipient, channels=channels, context=context, now=now,
                        attachments=[attachment], leak_check=leak_check)
    return added


def on_meeting_event(uow_factory: Callable, cases: CaseContacts, envelope: Envelope, consumer: str,
                     settings: Settings = Settings()) -> int:
    """meeting_scheduled / _rescheduled / _cancelled from the scheduling service. Contract:
    payload {meeting_id, case_id, kind, starts_at, ends_at (ISO, aware), venue_name,
    venue_address, participant_ids, facilitator_ids}."""
    contacts = cases.contacts(envelope.county, str(envelope.payload.get("case_id", "")))
    now = _now()
    with uow_factory() as uow:
        if not _claimed(uow, consumer, envelope):
            return 0
        previous = uow.repo.meeting(str(envelope.payload["meeting_id"]))
        row = _meeting_row(envelope, previous, settings.reminder_hours)
        uow.repo.upsert_meeting(row)
        extra = {"previous_starts_at_local": local_text(_aware(previous.starts_at if previous is not None
                                                               else row["starts_at"]), "en")}
        return _meeting_messages(uow, contacts, row, MEETING_EVENTS[envelope.type], envelope.event_id,
                                 envelope.event_id, now, settings, extra)





def send_reminders(uow_factory: Callable, cases: CaseContacts, settings: Settings = Settings(),
                   batch: int = 200) -> int:
    """Reminders before meetings (48 h and 24 h by default): each once per meeting, offset,
    recipient and channel, whichever worker's timer gets there."""
    now = _now()
    added = 0
    while True:
        # Read what is due, ask the cases service for contacts with no transaction open, then
        # lock and queue: a slow answer never holds rows (or SQLite's single writer).
        with uow_factory() as uow:
            due = uow.repo.meetings_needing_reminders(now, batch)
        if not due:
            return added
        contacts = {}
        for key in dict.fromkeys((m.county, m.case_id) for m in due):
            contacts[key] = cases.contacts(*key)          # Unavailable: tried again next tick
        with uow_factory() as uow:
            for m in uow.repo.meetings_needing_reminders(now, batch, lock=True,
                                                         meeting_ids=[m.meeting_id for m in due]):
                done = json.loads(m.reminders_done)
                offsets = [o for o in policy.reminder_due(_aware(m.starts_at), now, settings.reminder_hours)
                           if o not in done]
                meeting = dict(m._mapping)
                # One reminder now, even if two are overdue (a meeting booked 20 hours ahead).
                if offsets:
                    offset = min(offsets)
                    added += _meeting_messages(uow, contacts.get((m.county, m.case_id)), meeting, "meeting_reminder",
                                               f"reminder:{m.meeting_id}:{m.sequence}:{offset}",
                                               f"reminder:{m.meeting_id}", now, settings, {"hours_before": offset})
                done = sorted(set(done) | set(offsets))
                # (nothing due although the row said so: the offsets changed; stop asking about it)
                uow.repo.mark_reminded(m.meeting_id, done, next_reminder_at(m.starts_at, done, settings.reminder_hours)
                                       if offsets else None)


# -- delivery -----------------------------------------------------------------------------------
def _attachments(row) -> list[tuple[str, str, bytes]]:
    return [(a["filename"], a["mime"], base64.b64decode(a["base64"])) for a in json.loads(row.attachments)]


def _send(row, senders: Senders, settings: Settings, secrets: dict[str, str]) -> str:
    if row.channel == "email":
        return senders.email(message_id=row.message_id, to=row.address, subject=row.subject, body=row.body,
                             attachments=_attachments(row))
    if row.channel == "sms":
        return senders.sms(message_id=row.message_id, to=row.address, body=row.body)
    if row.channel == "letter":
        where = json.loads(row.address)
        pdf = letter_pdf(recipient_name=where["lines"][0] if where["lines"] else "", address_lines=where["lines"][1:],
                         date_text=date_text(_aware(row.created_at).astimezone(LONDON).date(), row.language),
                         subject=row.subject,
                         body=row.body, county_name=row.county.replace("-", " ").title(),
                         **({"font_path": settings.letter_font} if settings.letter_font else {}))
        return senders.letter(message_id=row.message_id, address_lines=where["lines"], postcode=where["postcode"],
                              pdf=pdf)
    if row.channel == "webhook":
        return senders.webhook(url=row.address, secret=secrets.get(row.recipient_id, ""), message_id=row.message_id,
                               body=row.body.encode())
    raise ValueError(f"unknown channel {row.channel}")


def dispatch_due(uow_factory: Callable, senders: Senders, settings: Settings = Settings()) -> dict[str, int]:
    """Send what is due, one batch. Each outcome is committed as soon as it is known, so a crash
    can repeat at most the messages in flight, never the batch."""
    from ..adapters.channels import PermanentFailure, TemporaryFailure
    now = _now()
    with uow_factory() as uow:
        rows = uow.repo.claim_due(now, settings.lease_seconds, settings.dispatch_batch)
        secrets = {}
        for agency_id in {r.recipient_id for r in rows if r.channel == "webhook"}:
            contact = uow.repo.referrer(agency_id)
            secrets[agency_id] = contact.webhook_secret if contact else ""
    outcome = {"sent": 0, "retry": 0, "failed": 0}
    renewed = now
    for index, row in enumerate(rows):
        started = _now()
        if (started - renewed).total_seconds() > settings.lease_seconds / 3:
            # Sends are one by one: keep the rest of the batch held while they wait their turn.
            with uow_factory() as uow:
                uow.repo.extend_claims([r.message_id for r in rows[index:]],
                                       started + timedelta(seconds=settings.lease_seconds))
            renewed = started
        try:
            ref = _send(row, senders, settings, secrets)
        except TemporaryFailure as exc:
            attempts = row.attempts + 1
            if attempts >= settings.max_attempts:
                _fail(uow_factory, row, f"gave up after {attempts} attempts: {exc}")
                outcome["failed"] += 1
                continue
            delay = policy.retry_delay(attempts)
            if exc.retry_after:
                delay = max(delay, min(timedelta(seconds=exc.retry_after), policy.MAX_PROVIDER_WAIT))
            with uow_factory() as uow:
                uow.repo.settle(row.message_id, status="queued", attempts=attempts, claimed_until=None,
                                next_attempt_at=_now() + delay, last_error=str(exc)[:500])
            RETRIED.labels(row.channel).inc()
            outcome["retry"] += 1
            continue
        except PermanentFailure as exc:
            _fail(uow_factory, row, str(exc))
            outcome["failed"] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - a bug in one message must not stop the rest
            log.exception("sending message %s failed unexpectedly", row.message_id)
            _fail(uow_factory, row, f"could not be sent: {type(exc).__name__}")
            outcome["failed"] += 1
            continue
        SEND_TIME.labels(row.channel).observe((_now() - started).total_seconds())
        delivered = row.channel == "webhook"       # a 2xx from the receiver is delivery
        at = _now()
        with uow_factory() as uow:
            uow.repo.settle(row.message_id, status="delivered" if delivered else "sent", attempts=row.attempts + 1,
                            claimed_until=None, sent_at=at, delivered_at=at if delivered else None,
                            provider_ref=str(ref or "")[:200], last_error="")
        SENT.labels(row.channel).inc()
        outcome["sent"] += 1
    return outcome


def _fail(uow_factory: Callable, row, why: str) -> None:
    """Failed for good: visible on the message, and published as notification_failed, which the
    dead-letter queue notifications.delivery.dlq keeps for an operator."""
    with uow_factory() as uow:
        uow.repo.settle(row.message_id, status="failed", attempts=row.attempts + 1, claimed_until=None,
                        last_error=why[:500])
        uow.publish(new_event(SERVICE, "notification_failed", row.county, {
            "message_id": row.message_id, "case_id": row.case_id, "message_type": row.message_type,
            "channel": row.channel, "recipient_kind": row.recipient_kind, "reason": why[:500]}))
        uow.audit("system:notifications", "notification.failed", "message", row.message_id, row.county,
                  reason=why[:500])
    FAILED.labels(row.channel).inc()


def poll_provider_status(uow_factory: Callable, senders: Senders, batch: int = 100) -> int:
    """SMS and letters: the provider says when they were delivered or bounced."""
    with uow_factory() as uow:
        rows = uow.repo.awaiting_provider_status(batch)
    changed = 0
    for row in rows:
        try:
            status = senders.provider_status(row.provider_ref)
        except Exception as exc:  # noqa: BLE001 - asked again next time
            log.warning("provider status of %s unavailable: %s", row.message_id, exc)
            continue
        if status in ("delivered", "bounced", "failed"):
            with uow_factory() as uow:
                if uow.repo.set_status(row.message_id, ("sent",), status=status,
                                       delivered_at=_now() if status == "delivered" else None):
                    changed += 1
    return changed


# -- staff: reading and settings -------------------------------------------------------------------
def _reader(principal: Principal) -> None:
    if principal.kind != "staff" or not principal.has_any_role(*READERS):
        raise PermissionDenied("messages are for coordinators, managers and auditors")


def _staff_of_case(uow_factory: Callable, cases: CaseContacts, principal: Principal, case_id: str, action: str,
                   roles: tuple[str, ...]) -> dict:
    """The case among the caller's counties, checked with the cases service."""
    _reader(principal)
    for county in sorted(principal.counties):
        contacts = cases.contacts(county, case_id)
        if contacts is not None:
            if not principal.has_any_role(*roles):
                raise PermissionDenied(f"this needs one of: {', '.join(roles)}")
            return contacts
    with uow_factory() as uow:
        uow.audit(principal.label, f"{action}_refused", "case", case_id, None)
    raise NotFound(f"case {case_id} not found")


def list_messages(uow_factory: Callable, cases: CaseContacts, principal: Principal, case_id: str) -> list:
    v = Violations()
    case_id = v.uuid("case_id", case_id)
    v.raise_if_any()
    _reader(principal)
    with uow_factory() as uow:
        found = []
        for county in sorted(principal.counties):
            found += uow.repo.messages_for_case(county, case_id)
        uow.audit(principal.label, "notification.list", "case", case_id, found[0].county if found else None)
    return found


def get_message(uow_factory: Callable, principal: Principal, message_id: str):
    v = Violations()
    message_id = v.uuid("message_id", message_id)
    v.raise_if_any()
    _reader(principal)
    with uow_factory() as uow:
        row = uow.repo.message(message_id)
        visible = row is not None and row.county in principal.counties
        uow.audit(principal.label, "notification.read" if visible else "notification.read_refused", "message",
                  message_id, row.county if visible else None)
    if not visible:
        raise NotFound(f"message {message_id} not found")
    return row


def retry_message(uow_factory: Callable, principal: Principal, message_id: str):
    row = get_message(uow_factory, principal, message_id)
    if not principal.has_any_role(*WRITERS):
        raise PermissionDenied("coordinators and managers retry messages")
    with uow_factory() as uow:
        if not uow.repo.set_status(message_id, ("failed", "bounced"), status="queued", next_attempt_at=_now(),
                                   attempts=0, last_error=""):
            from mend_common.errors import FailedPrecondition
            raise FailedPrecondition(f"message {message_id} is {row.status}: only a failed or bounced one is retried")
        uow.audit(principal.label, "notification.retry", "message", message_id, row.county)
        return uow.repo.message(message_id)


def _clock(v: Violations, name: str, text: str) -> str:
    if not text:
        return ""
    try:
        return time.fromisoformat(text).strftime("%H:%M")
    except (ValueError, TypeError):
        v.add(name, "must be a time of day, HH:MM")
        return ""


def set_contact_preferences(uow_factory: Callable, cases: CaseContacts, principal: Principal, *, case_id: str,
                            participant_id: str, channels: Sequence[str], language: str, quiet_start: str,
                            quiet_end: str):
    v = Violations()
    case_id = v.uuid("case_id", case_id)
    participant_id = v.uuid("participant_id", participant_id)
    for i, c in enumerate(channels):
        if c not in PARTICIPANT_CHANNELS:
            v.add(f"channels[{i}]", "must be one of " + ", ".join(PARTICIPANT_CHANNELS))
    if len(set(channels)) != len(channels):
        v.add("channels", "must not name a channel twice")
    language = language or "en"
    if language not in LANGUAGES:
        v.add("language", "must be one of " + ", ".join(LANGUAGES))
    start, end = _clock(v, "quiet_start", quiet_start), _clock(v, "quiet_end", quiet_end)
    if bool(start) != bool(end):
        v.add("quiet_end" if start else "quiet_start", "quiet hours need both a start and an end")
    elif start and start == end:
        v.add("quiet_end", "must differ from quiet_start")
    v.raise_if_any()
    contacts = _staff_of_case(uow_factory, cases, principal, case_id, "notification.preferences", WRITERS)
    if participant_id not in {p["participant_id"] for p in contacts["participants"]}:
        v.add("participant_id", "is not a participant of this case")
        v.raise_if_any()
    row = {"case_id": case_id, "participant_id": participant_id, "county": contacts["county"],
           "channels": json.dumps(sorted(channels)), "language": language, "quiet_start": start, "quiet_end": end,
           "updated_by": principal.subject, "updated_at": _now()}
    with uow_factory() as uow:
        uow.repo.set_preferences(row)
        uow.audit(principal.label, "notification.preferences", "case", case_id, contacts["county"],
                  reason=f"{participant_id}: {', '.join(sorted(channels)) or 'no channels'}, {language}")
    return row


def get_contact_preferences(uow_factory: Callable, cases: CaseContacts, principal: Principal, *, case_id: str,
                            participant_id: str) -> dict:
    v = Violations()
    case_id = v.uuid("case_id", case_id)
    participant_id = v.uuid("participant_id", participant_id)
    v.raise_if_any()
    contacts = _staff_of_case(uow_factory, cases, principal, case_id, "notification.preferences_read", READERS)
    person = next((p for p in contacts["participants"] if p["participant_id"] == participant_id), None)
    if person is None:
        raise NotFound(f"participant {participant_id} not found in case {case_id}")
    with uow_factory() as uow:
        saved = uow.repo.preferences(case_id).get(participant_id)
        uow.audit(principal.label, "notification.preferences_read", "case", case_id, contacts["county"])
    prefs = _participant_prefs(person, saved)
    return {"case_id": case_id, "participant_id": participant_id, "channels": sorted(prefs.channels),
            "language": prefs.language, "quiet_start": prefs.quiet_start.strftime("%H:%M") if prefs.quiet_start else "",
            "quiet_end": prefs.quiet_end.strftime("%H:%M") if prefs.quiet_end else "",
            "updated_by": saved.updated_by if saved else ""}


def release_details(uow_factory: Callable, cases: CaseContacts, principal: Principal, *, case_id: str,
                    about_participant_id: str, to_participant_id: str, fields: Sequence[str], reason: str) -> list[str]:
    v = Violations()
    case_id = v.uuid("case_id", case_id)
    about = v.uuid("about_participant_id", about_participant_id)
    to = v.uuid("to_participant_id", to_participant_id)
    if about and about == to:
        v.add("to_participant_id", "must be another participant")
    if not fields:
        v.add("fields", "must name at least one detail to release")
    for i, f in enumerate(fields):
        if f not in RELEASABLE_FIELDS:
            v.add(f"fields[{i}]", "must be one of " + ", ".join(RELEASABLE_FIELDS))
    if not isinstance(reason, str) or not reason.strip():
        v.add("reason", "is required: say why this party agreed to it")
    elif len(reason) > 2000 or "\x00" in reason:
        v.add("reason", "must be at most 2000 characters of text")
    v.raise_if_any()
    contacts = _staff_of_case(uow_factory, cases, principal, case_id, "notification.release", WRITERS)
    ids = {p["participant_id"] for p in contacts["participants"]}
    for name, pid in (("about_participant_id", about), ("to_participant_id", to)):
        if pid not in ids:
            v.add(name, "is not a participant of this case")
    v.raise_if_any()
    now = _now()
    with uow_factory() as uow:
        uow.repo.add_releases([{"case_id": case_id, "about_participant_id": about, "to_participant_id": to,
                                "field": f, "county": contacts["county"], "released_by": principal.subject,
                                "released_at": now, "reason": reason.strip()} for f in fields])
        uow.audit(principal.label, "notification.release", "case", case_id, contacts["county"],
                  reason=f"{', '.join(fields)} of {about} to {to}: {reason.strip()}"[:1000])
    return sorted(fields)


# -- templates ----------------------------------------------------------------------------------
def _template_input(message_type: str, channel: str, language: str, subject: str, body: str) -> None:
    problems = validate_template(message_type, channel, language, subject, body)
    if problems:
        raise ValidationFailed([_violation(field, rule) for field, rule in problems])


def _violation(field: str, rule: str):
    from mend_common.errors import FieldViolation
    return FieldViolation(field, rule)


def save_template(uow_factory: Callable, principal: Principal, *, message_type: str, channel: str, language: str,
                  subject: str, body: str) -> dict:
    if principal.kind != "staff" or not principal.has_any_role("manager"):
        raise PermissionDenied("templates are edited by managers")
    _template_input(message_type, channel, language, subject, body)
    with uow_factory() as uow:
        latest = uow.repo.latest_template(message_type, channel, language)
        built_in = DEFAULT_TEMPLATES.get((message_type, channel, language))
        version = max(latest.version if latest else 0, built_in.version if built_in else 0) + 1
        row = {"message_type": message_type, "channel": channel, "language": language, "version": version,
               "subject": subject, "body": body, "saved_by": principal.subject, "saved_at": _now()}
        uow.repo.save_template(row)
        uow.audit(principal.label, "notification.template_saved", "template",
                  f"{message_type}/{channel}/{language}/v{version}", None)
    return row


def list_templates(uow_factory: Callable, principal: Principal, message_type: str = "") -> list[dict]:
    if principal.kind != "staff" or not principal.has_any_role("coordinator", "manager", "auditor"):
        raise PermissionDenied("templates are for coordinators, managers and auditors")
    if message_type and message_type not in MESSAGE_TYPES:
        raise ValidationFailed([_violation("message_type", "must be one of " + ", ".join(MESSAGE_TYPES))])
    found = [{"message_type": t.message_type, "channel": t.channel, "language": t.language, "version": t.version,
              "subject": t.subject, "body": t.body, "saved_by": "built in", "saved_at": None}
             for key, t in sorted(DEFAULT_TEMPLATES.items()) if not message_type or key[0] == message_type]
    with uow_factory() as uow:
        found += [dict(r._mapping) for r in uow.repo.templates(message_type)]
    return found


def preview_template(principal: Principal, *, message_type: str, channel: str, language: str, subject: str,
                     body: str):
    from ..domain.templates import preview
    if principal.kind != "staff" or not principal.has_any_role("coordinator", "manager", "auditor"):
        raise PermissionDenied("templates are for coordinators, managers and auditors")
    _template_input(message_type, channel, language, subject, body)
    try:
        return preview(Template(message_type, channel, language, 0, subject, body), message_type)
    except TemplateProblem as exc:
        raise ValidationFailed([_violation(f, r) for f, r in exc.problems]) from None


# -- contacts of staff and referrers ---------------------------------------------------------------
def _email(v: Violations, name: str, value: str, *, required: bool) -> str:
    value = (value or "").strip()
    if not value:
        if required:
            v.add(name, "is required")
        return ""
    local, _, domain = value.partition("@")
    if not local or "." not in domain or len(value) > 320 or any(c.isspace() for c in value) or "\x00" in value:
        v.add(name, "must be an email address")
    return value


def set_staff_contact(uow_factory: Callable, principal: Principal, *, county: str, subject: str, name: str,
                      email: str, roles: Sequence[str], language: str, active: bool) -> dict:
    if principal.kind != "staff" or not principal.has_any_role("admin", "manager"):
        raise PermissionDenied("staff contacts are kept by admins and managers")
    v = Violations()
    if county not in principal.counties:
        v.add("county", "must be one of your counties")
    if not subject or len(subject) > 200 or "\x00" in subject:
        v.add("subject", "is required (the staff member's id), at most 200 characters")
    if not name or len(name) > 200 or "\x00" in name:
        v.add("name", "is required, at most 200 characters")
    email = _email(v, "email", email, required=True)
    for i, r in enumerate(roles):
        if r not in ("coordinator", "manager", "facilitator"):
            v.add(f"roles[{i}]", "must be one of coordinator, manager, facilitator")
    language = language or "en"
    if language not in LANGUAGES:
        v.add("language", "must be one of " + ", ".join(LANGUAGES))
    v.raise_if_any()
    row = {"county": county, "subject": subject, "name": name, "email": email, "roles": json.dumps(sorted(set(roles))),
           "language": language, "active": bool(active)}
    with uow_factory() as uow:
        uow.repo.set_staff(row)
        uow.audit(principal.label, "notification.staff_contact", "staff", subject, county)
    return row


def register_referrer_contact(uow_factory: Callable, principal: Principal, *, agency_id: str, county: str,
                              webhook_url: str, email: str) -> dict:
    from urllib.parse import urlparse

    from ..domain.webhooks import new_secret
    if principal.kind != "staff" or not principal.has_any_role("admin"):
        raise PermissionDenied("referrer contacts are registered by admins")
    v = Violations()
    agency_id = v.uuid("agency_id", agency_id)
    if county not in principal.counties:
        v.add("county", "must be one of your counties")
    webhook_url = (webhook_url or "").strip()
    if webhook_url:
        url = urlparse(webhook_url)
        if url.scheme not in ("https", "http") or not url.netloc or len(webhook_url) > 2000:
            v.add("webhook_url", "must be an http(s) URL")
    email = _email(v, "email", email, required=False)
    if not webhook_url and not email:
        v.add("webhook_url", "a webhook URL or an email address is required")
    v.raise_if_any()
    row = {"agency_id": agency_id, "county": county, "webhook_url": webhook_url,
           "webhook_secret": new_secret() if webhook_url else "", "email": email, "active": True}
    with uow_factory() as uow:
        uow.repo.set_referrer(row)
        uow.audit(principal.label, "notification.referrer_contact", "agency", agency_id, county)
    return row
