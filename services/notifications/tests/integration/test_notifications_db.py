"""The notifications service's use cases through the real repository, migrations, unit of work and
outbox, on SQLite and on PostgreSQL: which messages other services' events become (one per
event, recipient and channel, by consented channels only, never with another party's unreleased
details), how the dispatcher sends, retries and gives them up, reminders before meetings, what
referrers and staff are told, and what the staff API lets whom do. Only the ports are stand-ins:
the cases service (participant contacts) and the delivery channels."""
from __future__ import annotations

import base64
import collections
import json
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from mend_notifications.domain.templates import local_text
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from prometheus_client import REGISTRY
from sqlalchemy import delete, func, insert, select, text, update

from mend_common.auth import Principal
from mend_common.db import Database
from mend_common.envelope import new_event
from mend_common.errors import FailedPrecondition, NotFound, PermissionDenied, Unavailable, ValidationFailed
from mend_common.migrations import upgrade
from mend_common.outbox import PlatformStore
from mend_common.registry import load_definition
from mend_common.testing.plugin import PostgresDatabase
from mend_common.uow import UnitsOfWork
from mend_notifications.adapters.channels import PermanentFailure, TemporaryFailure
from mend_notifications.adapters.tables import meetings, messages, metadata, platform, templates
from mend_notifications.domain import policy
from mend_notifications.domain.templates import _MONTHS
from mend_notifications.service_layer import services
from mend_notifications.service_layer.unit_of_work import NotificationsUnitOfWork

COUNTY = "cumbria"
ELSEWHERE = "lancashire"
LONDON = ZoneInfo("Europe/London")
UTC = timezone.utc
SETTINGS = services.Settings()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db(request, tmp_path_factory):
    if request.param == "sqlite":
        url, pg = f"sqlite:///{tmp_path_factory.mktemp('notifications')}/notifications.db", None
    else:
        pg = PostgresDatabase(f"mend_notifications_{uuid.uuid4().hex[:10]}").create()
        url = pg.url
    upgrade(load_definition("notifications"), url)
    database = Database(url, "notifications", pool_size=4)
    yield database
    database.dispose()
    if pg:
        pg.drop()


def units_of_work(database: Database) -> UnitsOfWork:
    store = PlatformStore(database, platform, "notifications")
    return UnitsOfWork(lambda: NotificationsUnitOfWork(database, store))


@pytest.fixture
def uows(db):
    factory = units_of_work(db)
    factory.db = db          # for the helpers below that count what a handler queued
    return factory


@pytest.fixture(autouse=True)
def empty(db):
    """Every test starts from empty tables: the dispatcher sends whatever is due, whoever queued it."""
    with db.transaction() as conn:
        for table in metadata.sorted_tables:
            conn.execute(delete(table))


# -- principals -----------------------------------------------------------------------------------
def staff(*roles, subject="c1", counties=(COUNTY,)) -> Principal:
    return Principal(kind="staff", subject=subject, roles=frozenset(roles), counties=frozenset(counties))


COORDINATOR = staff("coordinator")
MANAGER = staff("manager", subject="m1")
AUDITOR = staff("auditor", subject="a1")
FACILITATOR = staff("facilitator", subject="f-1")
ADMIN = staff("admin", subject="ad1")
ADMIN_BOTH = staff("admin", subject="ad2", counties=(COUNTY, ELSEWHERE))
OTHER_COUNTY_COORDINATOR = staff("coordinator", subject="c9", counties=(ELSEWHERE,))
OTHER_COUNTY_MANAGER = staff("manager", subject="m9", counties=(ELSEWHERE,))


# -- the people of a case ---------------------------------------------------------------------------
def person(role, given, family, *, channel="email", consent=True, stopped=False, email="", phone="", address="",
           postcode="", youth=False) -> dict:
    return {"participant_id": str(uuid.uuid4()), "role": role, "given_name": given, "family_name": family,
            "is_youth": youth, "consent_to_contact": consent, "consent_current": True, "process_stopped": stopped,
            "preferred_channel": channel, "email": email, "phone": phone, "address": address, "postcode": postcode}


VICTIM_HOME = "Flat 2\n14 Castle Street\nPenrith"


def victim(**kw) -> dict:
    details = dict(email="sian.pritchard@example.org", phone="07700 900123", address=VICTIM_HOME,
                   postcode="CA11 7PT")
    details.update(kw)
    given, family = details.pop("given", "Siân"), details.pop("family", "Pritchard")
    return person("victim", given, family, **details)


def responsible(**kw) -> dict:
    details = dict(email="jb1999@example.net", phone="+44 7700 900456", address="3 Beacon Edge\nPenrith",
                   postcode="CA11 8BN")
    details.update(kw)
    given, family = details.pop("given", "Jordan"), details.pop("family", "Blackwood")
    return person("responsible_person", given, family, **details)


def supporter(**kw) -> dict:
    details = dict(email="carys@example.org", phone="01768 900789", address=VICTIM_HOME, postcode="CA11 7PT")
    details.update(kw)
    return person("supporter", "Carys", "Pritchard", **details)


# -- the ports, stood in for ----------------------------------------------------------------------
class Cases:
    """An in-memory CaseContacts answering like cases.participant_contacts."""

    def __init__(self):
        self.by_id: dict[str, dict] = {}
        self.down = False
        self.asked: list[tuple[str, str]] = []

    def contacts(self, county: str, case_id: str) -> dict | None:
        self.asked.append((county, case_id))
        if self.down:
            raise Unavailable("the cases service could not be asked; try again")
        found = self.by_id.get(case_id)
        if found is None or found["county"] != county:
            return None
        return json.loads(json.dumps(found))          # a fresh answer every time, like an RPC

    def open(self, *participants: dict, county: str = COUNTY) -> dict:
        case = {"case_id": str(uuid.uuid4()), "county": county, "stage": "preparation",
                "agency_reference": "CC/2026/004512", "referral_id": str(uuid.uuid4()),
                "participants": [dict(p) for p in participants]}
        self.by_id[case["case_id"]] = case
        return case


class Senders:
    """The delivery channels: records every call; `fail` maps a message id or an address to an
    exception raised every time, or to a list of them raised one per attempt (then success)."""

    def __init__(self, delay: float = 0.0):
        self.sent: list[dict] = []
        self.per_message: collections.Counter = collections.Counter()
        self.fail: dict[str, object] = {}
        self.statuses: dict[str, str] = {}
        self.delay = delay
        self._lock = threading.Lock()

    def _go(self, channel: str, message_id: str, to: str, **details) -> str:
        with self._lock:
            self.sent.append({"channel": channel, "message_id": message_id, "to": to, **details})
            self.per_message[message_id] += 1
            planned = self.fail.get(message_id, self.fail.get(to))
            outcome = (planned.pop(0) if planned else None) if isinstance(planned, list) else planned
        if self.delay:
            time.sleep(self.delay)
        if outcome is not None:
            raise outcome
        return f"{channel}-ref-{message_id}"

    def email(self, *, message_id, to, subject, body, attachments):
        return self._go("email", message_id, to, subject=subject, body=body, attachments=list(attachments))

    def sms(self, *, message_id, to, body):
        return self._go("sms", message_id, to, body=body)

    def letter(self, *, message_id, address_lines, postcode, pdf):
        return self._go("letter", message_id, postcode, address_lines=list(address_lines), pdf=pdf)

    def webhook(self, *, url, secret, message_id, body):
        return self._go("webhook", message_id, url, secret=secret, body=body)

    def provider_status(self, provider_ref):
        return self.statuses.get(provider_ref, "sent")


# -- events -----------------------------------------------------------------------------------------
def _now() -> datetime:
    return datetime.now(UTC)


def meeting_event(case, event_type="meeting_scheduled", *, meeting_id=None, starts_at=None,
                  starts_in=timedelta(days=7), length=timedelta(hours=1, minutes=30), who=None, facilitators=("f-1",),
                  kind="conference", venue_name="Penrith Community Centre",
                  venue_address="Middlegate, Penrith CA11 7JX"):
    starts = starts_at or _now() + starts_in
    people = [p["participant_id"] for p in case["participants"]] if who is None else [p["participant_id"] for p in who]
    return new_event("scheduling", event_type, case["county"], {
        "meeting_id": meeting_id or str(uuid.uuid4()), "case_id": case["case_id"], "kind": kind,
        "starts_at": starts.isoformat(), "ends_at": (starts + length).isoformat(), "venue_name": venue_name,
        "venue_address": venue_address, "participant_ids": people, "facilitator_ids": list(facilitators)})


def consent_requested(case, participant, status="requested"):
    return new_event("cases", "consent_recorded", case["county"], {
        "case_id": case["case_id"], "participant_id": participant["participant_id"], "role": participant["role"],
        "status": status, "method": "", "at": _now().isoformat()})


def referral_received(referral_id, agency_id, reference="CC/2026/004512", county=COUNTY):
    return new_event("referrals", "referral_received", county, {
        "referral_id": referral_id, "agency_id": agency_id, "received_at": _now().isoformat(),
        "referral": {"agency_reference": reference, "county": county}})


def case_event(event_type, case_id, referral_id, agency_id, reference="CC/2026/004512", county=COUNTY, **extra):
    payload = {"case_id": case_id, "referral_id": referral_id, "agency_id": agency_id, "agency_reference": reference}
    payload.update({
        "case_opened": {"stage": "eligibility", "opened_at": _now().isoformat()},
        "eligibility_decided": {"decision": "accepted", "reason": "", "facts_acknowledged": True,
                                "decided_at": _now().isoformat()},
        "case_closed": {"reason": "completed", "after_rejection": False, "closed_at": _now().isoformat()},
    }[event_type])
    payload.update(extra)
    return new_event("cases", event_type, county, payload)


# The handlers below answer how many messages the call added, as the database shows it: the
# use cases' own counts are wrong on PostgreSQL (test_handlers_say_how_many_messages_they_queued).
def queued(uows, call) -> int:
    before = message_count(uows.db)
    call()
    return message_count(uows.db) - before


def on_meeting(uows, cases, envelope, consumer=None):
    return queued(uows, lambda: services.on_meeting_event(uows, cases, envelope,
                                                          consumer or f"notifications.on_{envelope.type}"))


def on_consent(uows, cases, envelope, consumer="notifications.on_consent_recorded"):
    return queued(uows, lambda: services.on_consent_recorded(uows, cases, envelope, consumer))


def on_referral(uows, envelope):
    return queued(uows, lambda: services.on_referral_event(uows, envelope, f"notifications.on_{envelope.type}"))


def on_alert(uows, envelope):
    return queued(uows, lambda: services.on_staff_alert(uows, envelope, f"notifications.on_{envelope.type}"))


def remind(uows, cases):
    return queued(uows, lambda: services.send_reminders(uows, cases))


# -- set-up through the staff API -------------------------------------------------------------------
def staff_contact(uows, subject, *roles, county=COUNTY, name=None, email=None, active=True, language="en"):
    return services.set_staff_contact(uows, ADMIN_BOTH, county=county, subject=subject, name=name or f"Staff {subject}",
                                      email=email or f"{subject}@{county}.example.org", roles=list(roles),
                                      language=language, active=active)


def facilitator(uows, subject="f-1", name="Alex Jones"):
    return staff_contact(uows, subject, "facilitator", name=name, email="alex.jones@cumbria.example.org")


def prefer(uows, cases, case, participant, channels, language="en", quiet=("", ""), principal=COORDINATOR):
    return services.set_contact_preferences(uows, cases, principal, case_id=case["case_id"],
                                            participant_id=participant["participant_id"], channels=list(channels),
                                            language=language, quiet_start=quiet[0], quiet_end=quiet[1])


def release(uows, cases, case, about, to, fields=("given_name",), principal=COORDINATOR):
    return services.release_details(uows, cases, principal, case_id=case["case_id"],
                                    about_participant_id=about["participant_id"],
                                    to_participant_id=to["participant_id"], fields=list(fields),
                                    reason="agreed at the preparation visit")


# -- reading what was stored ---------------------------------------------------------------------------
def aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def stored(db, **match) -> list:
    """Message rows matching column=value, in a stable order."""
    query = select(messages)
    for column, value in match.items():
        query = query.where(messages.c[column] == value)
    with db.transaction() as conn:
        return conn.execute(query.order_by(messages.c.recipient_kind, messages.c.recipient_id, messages.c.channel,
                                           messages.c.message_type, messages.c.created_at)).all()


def one(db, **match):
    found = stored(db, **match)
    assert len(found) == 1, found
    return found[0]


def to_whom(rows) -> list[tuple[str, str, str]]:
    return sorted((r.recipient_kind, r.recipient_id, r.channel) for r in rows)


def message_count(db) -> int:
    with db.transaction() as conn:
        return conn.execute(select(func.count()).select_from(messages)).scalar_one()


def outbox(db, event_type=None) -> list[dict]:
    with db.transaction() as conn:
        rows = conn.execute(select(platform.outbox.c.event_type, platform.outbox.c.body)
                            .order_by(platform.outbox.c.id)).all()
    return [json.loads(r.body) for r in rows if event_type is None or r.event_type == event_type]


def audits(db, resource_id=None) -> list[tuple]:
    query = select(platform.audit_log).order_by(platform.audit_log.c.id)
    if resource_id is not None:
        query = query.where(platform.audit_log.c.resource_id == resource_id)
    with db.transaction() as conn:
        return [(r.principal, r.action, r.county, r.reason) for r in conn.execute(query)]


def make_due(db, **match) -> None:
    """Time passes: queued messages matching column=value are due now."""
    query = update(messages).where(messages.c.status == "queued")
    for column, value in match.items():
        query = query.where(messages.c[column] == value)
    with db.transaction() as conn:
        conn.execute(query.values(next_attempt_at=_now() - timedelta(seconds=1)))


def withheld(reason: str) -> float:
    return REGISTRY.get_sample_value("mend_notifications_withheld_total", {"reason": reason}) or 0.0


def ics_text(row) -> str:
    """The calendar files of a message, decoded and unfolded, for reading."""
    texts = [base64.b64decode(a["base64"]).decode() for a in json.loads(row.attachments)]
    return "\n".join(t.replace("\r\n ", "").replace("\\,", ",").replace("\\;", ";") for t in texts)


def fields(raised) -> list[str]:
    return [v.field for v in raised.value.violations]


# -- the schema ------------------------------------------------------------------------------------
def test_migrations_build_exactly_the_tables_the_code_declares(db):
    with db.engine.connect() as conn:
        if db.is_postgres:
            conn.execute(text('SET search_path TO "notifications"'))
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
    assert diff == []


# -- one message per (event, recipient, channel) ---------------------------------------------------------
def test_an_event_handled_twice_adds_nothing(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    prefer(uows, cases, case, v, ["email", "sms"])
    envelope = consent_requested(case, v)

    assert on_consent(uows, cases, envelope) == 2
    first = stored(db)
    assert to_whom(first) == [("participant", v["participant_id"], "email"),
                              ("participant", v["participant_id"], "sms")]
    assert {r.event_id for r in first} == {envelope.event_id} and {r.status for r in first} == {"queued"}
    # Redelivered to the same consumer: claimed already.
    assert on_consent(uows, cases, envelope) == 0
    # Handled by another consumer (a renamed handler, a replay): the dedupe key stops it.
    assert on_consent(uows, cases, envelope, consumer="notifications.replay") == 0
    assert stored(db) == first

    # A meeting event handled twice: participants and facilitators once each.
    facilitator(uows)
    meeting = meeting_event(case)
    assert on_meeting(uows, cases, meeting) == 3
    assert on_meeting(uows, cases, meeting) == 0
    rows = stored(db, event_id=meeting.event_id)
    assert to_whom(rows) == [("facilitator", "f-1", "email"), ("participant", v["participant_id"], "email"),
                             ("participant", v["participant_id"], "sms")]
    with db.transaction() as conn:
        assert conn.execute(select(meetings.c.sequence)).scalar_one() == 0
    assert message_count(db) == 5


def test_handlers_say_how_many_messages_they_queued(db, uows, request):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    prefer(uows, cases, case, v, ["email", "sms"])
    facilitator(uows)
    envelope = consent_requested(case, v)
    assert services.on_consent_recorded(uows, cases, envelope, "notifications.one") == 2
    assert services.on_consent_recorded(uows, cases, envelope, "notifications.two") == 0
    meeting = meeting_event(case, starts_in=timedelta(hours=47))
    assert services.on_meeting_event(uows, cases, meeting, "notifications.one") == 3
    assert services.send_reminders(uows, cases) == 3
    assert services.send_reminders(uows, cases) == 0
    assert message_count(db) == 8


def test_a_replayed_event_is_not_counted_as_queued(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    envelope = consent_requested(case, v)

    def queued_metric():
        return REGISTRY.get_sample_value("mend_notifications_queued_total",
                                         {"message_type": "consent_requested", "channel": "email"}) or 0.0

    before = queued_metric()
    on_consent(uows, cases, envelope, consumer="notifications.one")
    on_consent(uows, cases, envelope, consumer="notifications.two")
    assert message_count(db) == 1
    assert queued_metric() == before + 1


def test_an_event_waits_for_the_cases_service_rather_than_being_lost(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    envelope = consent_requested(case, v)
    cases.down = True
    with pytest.raises(Unavailable):
        on_consent(uows, cases, envelope)
    meeting = meeting_event(case)
    with pytest.raises(Unavailable):
        on_meeting(uows, cases, meeting)
    assert message_count(db) == 0
    # Not claimed: the redelivery does the work.
    cases.down = False
    assert on_consent(uows, cases, envelope) == 1
    assert on_meeting(uows, cases, meeting) == 1
    assert message_count(db) == 2


def test_a_consent_record_other_than_a_request_sends_nothing(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    for status in ("given", "declined", "withdrawn"):
        assert on_consent(uows, cases, consent_requested(case, v, status=status)) == 0
    # A case the cases service does not know in that county: nothing, and the event is done with.
    stray = consent_requested(case, v)
    cases.by_id[case["case_id"]]["county"] = ELSEWHERE
    assert on_consent(uows, cases, stray) == 0
    cases.by_id[case["case_id"]]["county"] = COUNTY
    assert on_consent(uows, cases, stray) == 0
    assert message_count(db) == 0


# -- participants: consent, channels, preferences -----------------------------------------------------
def test_participants_are_written_to_only_by_a_consented_channel_they_can_be_reached_by(db, uows):
    cases = Cases()
    v = victim()
    no_phone = responsible(channel="sms", phone="")
    no_consent = supporter(consent=False)
    no_postcode = person("supporter", "Rhys", "Owen", channel="letter", address="1 Bridge Lane\nKeswick", postcode="")
    bad_email = person("supporter", "Dana", "Kerr", channel="email", email="dana at example.org")
    no_channel = person("supporter", "Ellis", "Park", channel="", email="ellis@example.org")
    case = cases.open(v, no_phone, no_consent, no_postcode, bad_email, no_channel)
    facilitator(uows)

    meeting = meeting_event(case)
    assert on_meeting(uows, cases, meeting) == 2
    rows = stored(db)
    assert to_whom(rows) == [("facilitator", "f-1", "email"), ("participant", v["participant_id"], "email")]
    mine = one(db, recipient_id=v["participant_id"])
    assert mine.address == "sian.pritchard@example.org" and mine.message_type == "meeting_scheduled"
    assert mine.language == "en" and mine.template_version == 1 and mine.county == COUNTY
    assert mine.case_id == case["case_id"] and mine.attempts == 0 and mine.sent_at is None
    assert mine.body.startswith("Dear Siân Pritchard,") and "Penrith Community Centre" in mine.body
    assert "Alex Jones" in mine.body                        # the facilitators are named
    assert "BEGIN:VCALENDAR" in ics_text(mine) and f"UID:{meeting.payload['meeting_id']}@mend" in ics_text(mine)
    # Consent requests go the same way.
    for p in (no_phone, no_consent, no_postcode, bad_email, no_channel):
        assert on_consent(uows, cases, consent_requested(case, p)) == 0
    assert on_consent(uows, cases, consent_requested(case, v)) == 1


def test_a_participant_whose_process_stopped_gets_nothing_whatever_was_saved(db, uows):
    cases = Cases()
    v = victim()
    r = responsible(stopped=True)
    case = cases.open(v, r)
    prefer(uows, cases, case, r, ["email", "sms", "letter"])
    assert on_consent(uows, cases, consent_requested(case, r)) == 0
    before = withheld("process_stopped")
    assert on_meeting(uows, cases, meeting_event(case, facilitators=())) == 1
    assert to_whom(stored(db)) == [("participant", v["participant_id"], "email")]
    assert withheld("process_stopped") == before + 1


def test_saved_preferences_override_what_the_referral_said(db, uows):
    cases = Cases()
    v = victim()                                               # the referral: email
    r = responsible(consent=False)                             # the referral: no contact
    s = supporter()                                            # the referral: email
    unreachable = person("supporter", "Ellis", "Park", email="ellis@example.org")
    case = cases.open(v, r, s, unreachable)
    prefer(uows, cases, case, v, ["sms", "letter"])
    prefer(uows, cases, case, r, ["email"])                     # consent recorded since, by staff
    prefer(uows, cases, case, s, [])                            # asked not to be written to
    prefer(uows, cases, case, unreachable, ["sms", "letter"])  # no phone number, no address

    assert on_meeting(uows, cases, meeting_event(case, facilitators=())) == 3
    assert to_whom(stored(db)) == sorted([("participant", v["participant_id"], "sms"),
                                          ("participant", v["participant_id"], "letter"),
                                          ("participant", r["participant_id"], "email")])
    sms = one(db, recipient_id=v["participant_id"], channel="sms")
    assert sms.address == "07700 900123" and sms.subject == "" and json.loads(sms.attachments) == []
    letter = one(db, recipient_id=v["participant_id"], channel="letter")
    assert json.loads(letter.address) == {"lines": ["Siân Pritchard", "Flat 2", "14 Castle Street", "Penrith"],
                                          "postcode": "CA11 7PT"}
    assert json.loads(letter.attachments) == []                 # the calendar file goes by email only
    assert one(db, recipient_id=r["participant_id"]).address == "jb1999@example.net"

    # Read back as staff see them; a change is audited.
    shown = services.get_contact_preferences(uows, cases, AUDITOR, case_id=case["case_id"],
                                             participant_id=v["participant_id"])
    assert shown == {"case_id": case["case_id"], "participant_id": v["participant_id"], "channels": ["letter", "sms"],
                     "language": "en", "quiet_start": "", "quiet_end": "", "updated_by": "c1"}
    assert ("staff:c1", "notification.preferences", COUNTY,
            f"{v['participant_id']}: letter, sms, en") in audits(db, case["case_id"])


def test_without_saved_preferences_the_referrals_channel_is_shown(db, uows):
    cases = Cases()
    v = victim(channel="sms")
    case = cases.open(v)
    shown = services.get_contact_preferences(uows, cases, COORDINATOR, case_id=case["case_id"],
                                             participant_id=v["participant_id"])
    assert shown["channels"] == ["sms"] and shown["updated_by"] == "" and shown["language"] == "en"
    with pytest.raises(NotFound):
        services.get_contact_preferences(uows, cases, COORDINATOR, case_id=case["case_id"],
                                         participant_id=str(uuid.uuid4()))


# -- quiet hours ---------------------------------------------------------------------------------------
def quiet_around_now() -> tuple[str, str, datetime]:
    """Quiet hours from an hour ago until two hours from now (London clock), and when they end."""
    local = _now().astimezone(LONDON)
    start, end = (local - timedelta(hours=1)).strftime("%H:%M"), (local + timedelta(hours=2)).strftime("%H:%M")
    ends = datetime.combine(local.date(), datetime.strptime(end, "%H:%M").time(), tzinfo=LONDON)
    if ends <= local:
        ends += timedelta(days=1)
    return start, end, ends.astimezone(UTC)


def test_quiet_hours_hold_a_message_until_they_end(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    start, end, ends = quiet_around_now()
    prefer(uows, cases, case, v, ["email", "sms"], quiet=(start, end))
    assert on_consent(uows, cases, consent_requested(case, v)) == 2
    for row in stored(db):
        assert aware(row.next_attempt_at) == ends, row.channel
    senders = Senders()
    assert services.dispatch_due(uows, senders) == {"sent": 0, "retry": 0, "failed": 0}
    assert senders.sent == [] and {r.status for r in stored(db)} == {"queued"}
    make_due(db)                                           # the quiet hours are over
    assert services.dispatch_due(uows, senders)["sent"] == 2


def test_letters_are_not_held_by_quiet_hours(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    start, end, ends = quiet_around_now()
    prefer(uows, cases, case, v, ["email", "letter"], quiet=(start, end))
    before = _now()
    assert on_consent(uows, cases, consent_requested(case, v)) == 2
    letter = one(db, channel="letter")
    assert before <= aware(letter.next_attempt_at) <= _now()
    assert aware(one(db, channel="email").next_attempt_at) == ends
    senders = Senders()
    assert services.dispatch_due(uows, senders)["sent"] == 1
    assert [s["channel"] for s in senders.sent] == ["letter"]


def test_quiet_hours_at_another_time_of_day_do_not_hold_a_message(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    local = _now().astimezone(LONDON)
    quiet = ((local + timedelta(hours=3)).strftime("%H:%M"), (local + timedelta(hours=5)).strftime("%H:%M"))
    prefer(uows, cases, case, v, ["email"], quiet=quiet)
    assert on_consent(uows, cases, consent_requested(case, v)) == 1
    assert aware(one(db).next_attempt_at) <= _now()


def test_quiet_hours_that_start_when_they_end_are_refused(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    with pytest.raises(ValidationFailed) as raised:
        prefer(uows, cases, case, v, ["email"], quiet=("21:00", "21:00"))
    assert {"quiet_start", "quiet_end"} & set(fields(raised))
    # Whatever happened, the case still works.
    assert services.get_contact_preferences(uows, cases, COORDINATOR, case_id=case["case_id"],
                                            participant_id=v["participant_id"])["channels"] == ["email"]
    assert on_consent(uows, cases, consent_requested(case, v)) == 1


# -- never another party's details -------------------------------------------------------------------
def test_a_meeting_message_names_the_other_party_only_once_it_was_released(db, uows):
    cases = Cases()
    v, r, s = victim(), responsible(), supporter()
    case = cases.open(v, r, s)
    facilitator(uows)
    meeting_id = str(uuid.uuid4())
    first = meeting_event(case, meeting_id=meeting_id)
    assert on_meeting(uows, cases, first) == 4
    for row in stored(db, event_id=first.event_id, recipient_kind="participant"):
        assert "Also taking part" not in row.body
    to_victim = one(db, event_id=first.event_id, recipient_id=v["participant_id"])
    assert "Jordan" not in to_victim.body and "Blackwood" not in to_victim.body
    to_responsible = one(db, event_id=first.event_id, recipient_id=r["participant_id"])
    assert to_responsible.body.startswith("Dear Jordan Blackwood,")
    for detail in ("Siân", "Sian", "Pritchard", "Carys", "Castle Street", "CA11 7PT", "07700 900123"):
        assert detail not in to_responsible.body + to_responsible.subject + ics_text(to_responsible)

    # The responsible person agreed that the victim may know their first name.
    assert release(uows, cases, case, about=r, to=v) == ["given_name"]
    assert audits(db, case["case_id"])[-1] == (
        "staff:c1", "notification.release", COUNTY,
        f"given_name of {r['participant_id']} to {v['participant_id']}: agreed at the preparation visit")
    moved = meeting_event(case, "meeting_rescheduled", meeting_id=meeting_id, starts_in=timedelta(days=8))
    assert on_meeting(uows, cases, moved) == 4
    to_victim = one(db, event_id=moved.event_id, recipient_id=v["participant_id"])
    assert "Also taking part: Jordan\n" in to_victim.body and "Blackwood" not in to_victim.body
    # Released to the victim only: not to the supporter, and nothing of the victim's to the other side.
    to_supporter = one(db, event_id=moved.event_id, recipient_id=s["participant_id"])
    assert "Jordan" not in to_supporter.body and "Also taking part" not in to_supporter.body
    to_responsible = one(db, event_id=moved.event_id, recipient_id=r["participant_id"])
    assert "Siân" not in to_responsible.body and "Also taking part" not in to_responsible.body
    # A shared family name is not a leak: each Pritchard reads her own name (the other's, unreleased, too).
    assert to_supporter.body.startswith("Dear Carys Pritchard,") and to_victim.body.startswith("Dear Siân Pritchard,")


def test_a_saved_template_cannot_print_what_was_not_released(db, uows):
    cases = Cases()
    v, r = victim(), responsible()
    case = cases.open(v, r)
    # Printing the optional name without testing it is refused when saved...
    with pytest.raises(ValidationFailed) as raised:
        services.save_template(uows, MANAGER, message_type="meeting_scheduled", channel="email", language="en",
                               subject="Your {{ meeting_kind }}", body="You will meet {{ other_party_name }}.")
    assert fields(raised) == ["body"]
    # ...and one that tests it prints nothing of the other party until a release.
    saved = services.save_template(uows, MANAGER, message_type="meeting_scheduled", channel="email", language="en",
                                   subject="Your {{ meeting_kind }}",
                                   body="Dear {{ recipient_name }}, you will meet "
                                        "{{ other_party_name | default('the other person') }}.")
    assert saved["version"] == 2
    first = meeting_event(case, facilitators=())
    assert on_meeting(uows, cases, first) == 2
    assert one(db, recipient_id=v["participant_id"]).body == "Dear Siân Pritchard, you will meet the other person."
    assert one(db, recipient_id=r["participant_id"]).body == "Dear Jordan Blackwood, you will meet the other person."
    assert one(db, recipient_id=v["participant_id"]).template_version == 2
    release(uows, cases, case, about=r, to=v, fields=("given_name", "family_name"))
    second = meeting_event(case, facilitators=())
    assert on_meeting(uows, cases, second) == 2
    assert one(db, event_id=second.event_id, recipient_id=v["participant_id"]).body == \
        "Dear Siân Pritchard, you will meet Jordan Blackwood."
    assert one(db, event_id=second.event_id, recipient_id=r["participant_id"]).body == \
        "Dear Jordan Blackwood, you will meet the other person."


@pytest.mark.parametrize("body", [
    "Dear {{ recipient_name }}, you will meet {{ other_party_name }}.",      # untested optional value
    "{{ recipient_name.__class__.__mro__ }}",                                 # SSTI
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{% for i in range(3) %}{{ recipient_name }}{% endfor %}",
])
def test_a_template_row_nobody_checked_is_withheld_not_sent(db, uows, body):
    """A row written past save_template (a restore, a hand edit) is validated again when used."""
    cases = Cases()
    v, r = victim(), responsible()
    case = cases.open(v, r)
    prefer(uows, cases, case, v, ["email", "sms"])
    facilitator(uows)
    with db.transaction() as conn:
        conn.execute(insert(templates), [{"message_type": "meeting_scheduled", "channel": "email", "language": "en",
                                          "version": 9, "subject": "Your {{ meeting_kind }}", "body": body,
                                          "saved_by": "someone", "saved_at": _now()}])
    before = withheld("template_error")
    assert on_meeting(uows, cases, meeting_event(case)) == 1
    # Nothing by email to anyone; the text message, from its own template, still goes.
    assert to_whom(stored(db)) == [("participant", v["participant_id"], "sms")]
    assert withheld("template_error") == before + 3


def test_a_message_that_would_reveal_another_partys_address_is_withheld(db, uows):
    """A meeting arranged at the victim's home, with both parties on it by mistake: the address
    reaches the victim (it is theirs) and the facilitator, never the responsible person."""
    cases = Cases()
    v, r = victim(), responsible()
    case = cases.open(v, r)
    facilitator(uows)
    before = withheld("unreleased_detail")
    meeting = meeting_event(case, venue_name="Home visit", venue_address="Flat 2, 14 Castle Street, Penrith CA11 7PT")
    assert on_meeting(uows, cases, meeting) == 2
    assert to_whom(stored(db)) == [("facilitator", "f-1", "email"), ("participant", v["participant_id"], "email")]
    assert "14 Castle Street" in one(db, recipient_id=v["participant_id"]).body
    assert withheld("unreleased_detail") == before + 1


def test_the_calendar_file_never_carries_another_partys_details(db, uows):
    cases = Cases()
    v, r = victim(), responsible()
    case = cases.open(v, r)
    meeting_id = str(uuid.uuid4())
    home = dict(venue_name="Home visit", venue_address="Flat 2, 14 Castle Street, Penrith CA11 7PT")
    on_meeting(uows, cases, meeting_event(case, meeting_id=meeting_id, facilitators=(), **home))
    on_meeting(uows, cases, meeting_event(case, "meeting_cancelled", meeting_id=meeting_id, facilitators=(), **home))
    for row in stored(db, recipient_id=r["participant_id"]):
        everything = (row.subject + row.body + ics_text(row)).casefold()
        assert "castle street" not in everything and "ca11 7pt" not in everything, row.message_type


def test_a_name_that_is_also_a_common_word_fails_safe(db, uows):
    """leaked_details matches names as whole words: a victim called Will makes "we will be in
    touch" look like their name, so the message to the other side is withheld rather than sent
    (nothing leaks; the responsible person is not told of the cancellation, and only a log line
    and a metric say so). Names under three letters are not looked for at all."""
    cases = Cases()
    v, r = victim(given="Will"), responsible()
    case = cases.open(v, r)
    meeting_id = str(uuid.uuid4())
    assert on_meeting(uows, cases, meeting_event(case, meeting_id=meeting_id, facilitators=())) == 2
    before = withheld("unreleased_detail")
    cancelled = meeting_event(case, "meeting_cancelled", meeting_id=meeting_id, facilitators=())
    assert on_meeting(uows, cases, cancelled) == 1
    assert to_whom(stored(db, event_id=cancelled.event_id)) == [("participant", v["participant_id"], "email")]
    assert "We will be in touch" in one(db, event_id=cancelled.event_id).body
    assert withheld("unreleased_detail") == before + 1
    assert policy.leaked_details("We will be in touch.", r["participant_id"],
                                 {p["participant_id"]: p for p in case["participants"]}, set()) == \
        [f"{v['participant_id']}.given_name"]
    # Once released, the same word no longer counts.
    assert policy.leaked_details("We will be in touch.", r["participant_id"],
                                 {p["participant_id"]: p for p in case["participants"]},
                                 {(v["participant_id"], r["participant_id"], "given_name")}) == []
    # A name under MIN_DETAIL_CHARS letters is not looked for at all (too like ordinary words):
    # only the template rules (no unreleased value can be printed) protect it.
    jo = dict(v, given_name="Jo")
    assert policy.leaked_details("Jo will meet you.", r["participant_id"], {v["participant_id"]: jo}, set()) == []


# -- sending ---------------------------------------------------------------------------------------
def test_dispatch_sends_what_is_due_and_records_each_outcome(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    prefer(uows, cases, case, v, ["email", "sms", "letter"])
    agency = str(uuid.uuid4())
    contact = services.register_referrer_contact(uows, ADMIN, agency_id=agency, county=COUNTY,
                                                 webhook_url="https://agency.example.org/hooks/mend", email="")
    on_consent(uows, cases, consent_requested(case, v))
    on_referral(uows, referral_received(str(uuid.uuid4()), agency))
    assert message_count(db) == 4

    senders = Senders()
    before = _now()
    assert services.dispatch_due(uows, senders) == {"sent": 4, "retry": 0, "failed": 0}
    after = _now()
    by_channel = {s["channel"]: s for s in senders.sent}
    assert set(by_channel) == {"email", "sms", "letter", "webhook"}
    assert by_channel["email"]["to"] == "sian.pritchard@example.org"
    assert by_channel["email"]["subject"] == "Taking part in restorative justice: your choice"
    assert by_channel["sms"]["to"] == "07700 900123"
    assert by_channel["letter"]["address_lines"] == ["Siân Pritchard", "Flat 2", "14 Castle Street", "Penrith"]
    assert by_channel["letter"]["to"] == "CA11 7PT" and by_channel["letter"]["pdf"].startswith(b"%PDF")
    assert by_channel["webhook"]["secret"] == contact["webhook_secret"]
    assert json.loads(by_channel["webhook"]["body"])["type"] == "referral.received"

    for row in stored(db):
        assert row.status == ("delivered" if row.channel == "webhook" else "sent"), row.channel
        assert row.attempts == 1 and row.claimed_until is None and row.last_error == ""
        assert before <= aware(row.sent_at) <= after and row.provider_ref == f"{row.channel}-ref-{row.message_id}"
        assert (row.delivered_at is not None) == (row.channel == "webhook")
    # A sent message is recorded on its row; no event is published for it (nothing consumes
    # one yet, and each would wait in the outbox for ever).
    published = outbox(db, "notification_sent")
    assert published == []
    sms = one(db, channel="sms")
    # Sent is sent: the next round finds nothing.
    assert services.dispatch_due(uows, senders) == {"sent": 0, "retry": 0, "failed": 0}
    assert len(senders.sent) == 4

    # The provider's delivery reports: SMS and letters only.
    senders.statuses = {sms.provider_ref: "delivered", one(db, channel="letter").provider_ref: "bounced"}
    assert services.poll_provider_status(uows, senders) == 2
    assert one(db, channel="sms").status == "delivered" and one(db, channel="sms").delivered_at is not None
    assert one(db, channel="letter").status == "bounced"
    assert services.poll_provider_status(uows, senders) == 0
    # Staff may send a bounced letter again (after correcting the address), not a delivered text message.
    assert services.retry_message(uows, MANAGER, one(db, channel="letter").message_id).status == "queued"
    for done in (sms, one(db, channel="email")):
        with pytest.raises(FailedPrecondition):
            services.retry_message(uows, COORDINATOR, done.message_id)
    assert one(db, channel="sms").status == "delivered" and one(db, channel="email").status == "sent"


def test_a_temporary_failure_is_tried_again_later_honouring_retry_after(db, uows):
    staff_contact(uows, "c1", "coordinator", email="c1@cumbria.example.org")
    on_alert(uows, new_event("cases", "outcome_item_overdue", COUNTY, {
        "case_id": str(uuid.uuid4()), "item_id": str(uuid.uuid4()), "kind": "apology",
        "owner_participant_id": str(uuid.uuid4()), "due_on": "2026-01-05"}))
    row = one(db)
    senders = Senders()
    senders.fail[row.address] = [TemporaryFailure("421 try later")]
    before = _now()
    assert services.dispatch_due(uows, senders) == {"sent": 0, "retry": 1, "failed": 0}
    again = one(db)
    assert again.status == "queued" and again.attempts == 1 and again.claimed_until is None
    assert again.last_error == "421 try later"
    first_wait = policy.RETRY_DELAYS[0]
    assert before + first_wait <= aware(again.next_attempt_at) <= _now() + first_wait * (1 + policy.RETRY_SPREAD)
    # Not due yet: the next round leaves it.
    assert services.dispatch_due(uows, senders) == {"sent": 0, "retry": 0, "failed": 0}

    # The provider asks for ten minutes: longer than our own backoff, so honoured.
    make_due(db)
    senders.fail[row.address] = [TemporaryFailure("429", retry_after=600)]
    before = _now()
    assert services.dispatch_due(uows, senders)["retry"] == 1
    again = one(db)
    assert again.attempts == 2
    assert before + timedelta(seconds=600) <= aware(again.next_attempt_at) <= _now() + timedelta(seconds=600)
    make_due(db)
    assert services.dispatch_due(uows, senders) == {"sent": 1, "retry": 0, "failed": 0}
    done = one(db)
    assert done.status == "sent" and done.attempts == 3 and done.last_error == ""
    assert len(senders.sent) == 3 and outbox(db, "notification_failed") == []


def test_a_providers_retry_after_is_honoured_only_up_to_a_limit(db, uows):
    staff_contact(uows, "c1", "coordinator")
    on_alert(uows, new_event("cases", "outcome_item_overdue", COUNTY, {"case_id": str(uuid.uuid4()),
                                                                        "kind": "apology", "due_on": "2026-01-05"}))
    senders = Senders()
    senders.fail[one(db).address] = [TemporaryFailure("429", retry_after=30 * 24 * 3600)]
    services.dispatch_due(uows, senders)
    assert aware(one(db).next_attempt_at) <= _now() + policy.MAX_PROVIDER_WAIT


def test_after_the_last_attempt_a_message_fails_for_good_and_can_be_retried_by_staff(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    on_consent(uows, cases, consent_requested(case, v))
    row = one(db)
    senders = Senders()
    senders.fail[row.address] = TemporaryFailure("mailbox busy")
    settings = services.Settings(max_attempts=3)
    for attempt in (1, 2):
        assert services.dispatch_due(uows, senders, settings) == {"sent": 0, "retry": 1, "failed": 0}
        assert one(db).attempts == attempt
        make_due(db)
    assert services.dispatch_due(uows, senders, settings) == {"sent": 0, "retry": 0, "failed": 1}
    failed = one(db)
    assert failed.status == "failed" and failed.attempts == 3 and failed.claimed_until is None
    assert failed.last_error == "gave up after 3 attempts: mailbox busy"
    [event] = outbox(db, "notification_failed")
    assert event["county"] == COUNTY and event["payload"] == {
        "message_id": row.message_id, "case_id": case["case_id"], "message_type": "consent_requested",
        "channel": "email", "recipient_kind": "participant", "reason": "gave up after 3 attempts: mailbox busy"}
    assert audits(db, row.message_id) == [("system:notifications", "notification.failed", COUNTY,
                                           "gave up after 3 attempts: mailbox busy")]
    assert outbox(db, "notification_sent") == []
    # Failed stays failed...
    make_due(db)
    assert services.dispatch_due(uows, senders, settings) == {"sent": 0, "retry": 0, "failed": 0}
    # ...until a coordinator retries it (an auditor may look, not retry).
    with pytest.raises(PermissionDenied):
        services.retry_message(uows, AUDITOR, row.message_id)
    assert one(db).status == "failed"
    retried = services.retry_message(uows, COORDINATOR, row.message_id)
    assert retried.status == "queued" and retried.attempts == 0 and retried.last_error == ""
    assert audits(db, row.message_id)[-1] == ("staff:c1", "notification.retry", COUNTY, None)
    del senders.fail[row.address]
    assert services.dispatch_due(uows, senders, settings) == {"sent": 1, "retry": 0, "failed": 0}
    assert one(db).status == "sent"
    # Only a failed or bounced message is retried.
    with pytest.raises(FailedPrecondition):
        services.retry_message(uows, COORDINATOR, row.message_id)
    assert one(db).status == "sent"


def test_a_permanent_failure_fails_at_once_and_a_broken_message_does_not_stop_the_rest(db, uows):
    cases = Cases()
    v, r, s = victim(), responsible(), supporter()
    case = cases.open(v, r, s)
    for p in (v, r, s):
        on_consent(uows, cases, consent_requested(case, p))
    senders = Senders()
    senders.fail["sian.pritchard@example.org"] = PermanentFailure("550 no such mailbox")
    senders.fail["jb1999@example.net"] = RuntimeError("a bug in a channel")
    assert services.dispatch_due(uows, senders) == {"sent": 1, "retry": 0, "failed": 2}
    assert len(senders.sent) == 3
    gone = one(db, recipient_id=v["participant_id"])
    assert (gone.status, gone.attempts, gone.last_error) == ("failed", 1, "550 no such mailbox")
    broken = one(db, recipient_id=r["participant_id"])
    assert (broken.status, broken.last_error) == ("failed", "could not be sent: RuntimeError")
    assert one(db, recipient_id=s["participant_id"]).status == "sent"
    assert sorted(e["payload"]["message_id"] for e in outbox(db, "notification_failed")) == \
        sorted([gone.message_id, broken.message_id])
    assert [a[1] for a in audits(db, gone.message_id)] == ["notification.failed"]


def test_a_message_whose_dispatcher_crashed_is_claimed_again_when_its_lease_lapses(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    on_consent(uows, cases, consent_requested(case, v))
    # A dispatcher claims it, then dies before sending.
    with uows() as uow:
        [claimed] = uow.repo.claim_due(_now(), 60, 50)
    held = one(db)
    assert held.status == "sending" and aware(held.claimed_until) > _now()
    senders = Senders()
    assert services.dispatch_due(uows, senders) == {"sent": 0, "retry": 0, "failed": 0}
    assert senders.sent == []
    with db.transaction() as conn:
        conn.execute(update(messages).where(messages.c.message_id == claimed.message_id)
                     .values(claimed_until=_now() - timedelta(seconds=1)))
    assert services.dispatch_due(uows, senders) == {"sent": 1, "retry": 0, "failed": 0}
    assert senders.per_message == {claimed.message_id: 1}
    assert one(db).status == "sent"


def test_a_slow_batch_is_not_sent_again_by_another_dispatcher(db, uows):
    """The production numbers, scaled down: one send (100 ms) is well inside the lease (250 ms), a
    batch of five is not. Only a message in flight when its lease lapses may be sent twice."""
    staff_contact(uows, "c1", "coordinator")
    for _ in range(5):
        on_alert(uows, new_event("cases", "outcome_item_overdue", COUNTY, {"case_id": str(uuid.uuid4()),
                                                                            "kind": "apology", "due_on": "2026-01-05"}))
    settings = services.Settings(lease_seconds=0.25, dispatch_batch=5)
    other = units_of_work(db)
    senders = Senders(delay=0.1)
    send = senders._go
    started: list[str] = []

    def go(channel, message_id, to, **details):
        started.append(message_id)
        if len(started) == 4:
            # The first dispatcher's fourth send, 300 ms after it claimed the batch: another
            # worker's timer fires.
            services.dispatch_due(other, senders, settings)
        return send(channel, message_id, to, **details)

    senders._go = go
    services.dispatch_due(uows, senders, settings)
    in_flight = started[3]
    assert {m: n for m, n in senders.per_message.items() if n > 1 and m != in_flight} == {}


def test_two_dispatchers_at_once_never_send_a_message_twice(db, uows):
    for i in range(8):
        staff_contact(uows, f"c{i}", "coordinator")
    for _ in range(5):
        on_alert(uows, new_event("cases", "victims_code_breach", COUNTY, {
            "case_id": str(uuid.uuid4()), "clock": "rj_information", "participant_id": str(uuid.uuid4()),
            "started_on": "2026-01-01", "due_on": "2026-01-05", "met_late": False}))
    assert message_count(db) == 40

    other_db = Database(db.url, "notifications", pool_size=4)
    senders = Senders(delay=0.005)
    settings = services.Settings(dispatch_batch=5)
    start = threading.Barrier(2)
    sent_by: dict[str, int] = {}
    errors: list[BaseException] = []

    def dispatcher(name, factory):
        try:
            start.wait()
            total = 0
            while True:
                outcome = services.dispatch_due(factory, senders, settings)
                if not any(outcome.values()):
                    break
                total += outcome["sent"]
            sent_by[name] = total
        except BaseException as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher, args=("a", uows)),
               threading.Thread(target=dispatcher, args=("b", units_of_work(other_db)))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        other_db.dispose()
    assert errors == []
    assert sum(senders.per_message.values()) == 40 and set(senders.per_message.values()) == {1}
    assert sent_by["a"] + sent_by["b"] == 40 and sent_by["a"] > 0 and sent_by["b"] > 0
    assert {r.status for r in stored(db)} == {"sent"}
    assert outbox(db, "notification_sent") == []


# -- reminders -------------------------------------------------------------------------------------
def reminders(db, **match):
    return stored(db, message_type="meeting_reminder", **match)


def test_a_meeting_47_hours_ahead_gets_the_48_hour_reminder_once(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    prefer(uows, cases, case, v, ["email", "sms"])
    facilitator(uows)
    event = meeting_event(case, starts_in=timedelta(hours=47))
    meeting_id = event.payload["meeting_id"]
    starts = datetime.fromisoformat(event.payload["starts_at"])
    on_meeting(uows, cases, event)
    assert remind(uows, cases) == 3
    assert remind(uows, cases) == 0
    sent = reminders(db)
    assert to_whom(sent) == [("facilitator", "f-1", "email"), ("participant", v["participant_id"], "email"),
                             ("participant", v["participant_id"], "sms")]
    assert all(f"reminder:{meeting_id}:0:48:" in r.dedupe_key for r in sent)
    assert {r.event_id for r in sent} == {f"reminder:{meeting_id}"}
    assert "This is a reminder about your " in one(db, message_type="meeting_reminder",
                                                      recipient_id=v["participant_id"], channel="email").body
    with db.transaction() as conn:
        m = conn.execute(select(meetings)).one()
    assert json.loads(m.reminders_done) == [48] and aware(m.next_reminder_at) == starts - timedelta(hours=24)

    # A day later the 24-hour reminder is due, once.
    with db.transaction() as conn:
        conn.execute(update(meetings).values(starts_at=_now() + timedelta(hours=23),
                                             next_reminder_at=_now() - timedelta(hours=1)))
    assert remind(uows, cases) == 3
    assert remind(uows, cases) == 0
    assert sorted(r.dedupe_key.split(":")[3] for r in reminders(db)) == ["24", "24", "24", "48", "48", "48"]


def test_reminders_wait_for_the_cases_service(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    on_meeting(uows, cases, meeting_event(case, starts_in=timedelta(hours=47), facilitators=()))
    cases.down = True
    with pytest.raises(Unavailable):
        services.send_reminders(uows, cases)
    assert reminders(db) == []
    cases.down = False
    assert remind(uows, cases) == 1


def test_a_meeting_arranged_20_hours_ahead_gets_one_reminder(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    on_meeting(uows, cases, meeting_event(case, starts_in=timedelta(hours=20), facilitators=()))
    assert remind(uows, cases) == 1
    assert remind(uows, cases) == 0
    [r] = reminders(db)
    assert ":0:24:" in r.dedupe_key
    with db.transaction() as conn:
        m = conn.execute(select(meetings)).one()
    assert json.loads(m.reminders_done) == [24, 48] and m.next_reminder_at is None


def test_a_cancelled_meeting_gets_no_reminders(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    facilitator(uows)
    scheduled = meeting_event(case, starts_in=timedelta(hours=47))
    on_meeting(uows, cases, scheduled)
    cancelled = meeting_event(case, "meeting_cancelled", meeting_id=scheduled.payload["meeting_id"],
                              starts_in=timedelta(hours=47))
    assert on_meeting(uows, cases, cancelled) == 2
    assert remind(uows, cases) == 0
    assert reminders(db) == []
    to_victim = one(db, message_type="meeting_cancelled", recipient_id=v["participant_id"])
    assert to_victim.subject.startswith("Cancelled: your ")
    assert "METHOD:CANCEL" in ics_text(to_victim) and "SEQUENCE:1" in ics_text(to_victim)
    with db.transaction() as conn:
        m = conn.execute(select(meetings)).one()
    assert (m.status, m.sequence, m.next_reminder_at) == ("cancelled", 1, None)


def test_a_rescheduled_meeting_is_reminded_afresh(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    scheduled = meeting_event(case, starts_in=timedelta(hours=47), facilitators=())
    meeting_id = scheduled.payload["meeting_id"]
    on_meeting(uows, cases, scheduled)
    assert remind(uows, cases) == 1
    moved = meeting_event(case, "meeting_rescheduled", meeting_id=meeting_id, starts_in=timedelta(hours=46))
    assert on_meeting(uows, cases, moved) == 1
    notice = one(db, message_type="meeting_rescheduled")
    was = local_text(datetime.fromisoformat(scheduled.payload["starts_at"]), "en")
    assert f"which was going to be {was}" in notice.body and "SEQUENCE:1" in ics_text(notice)
    assert remind(uows, cases) == 1
    assert remind(uows, cases) == 0
    assert sorted(r.dedupe_key.split(":")[2] for r in reminders(db)) == ["0", "1"]
    afresh = next(r for r in reminders(db) if r.dedupe_key.split(":")[2] == "1")
    assert local_text(datetime.fromisoformat(moved.payload["starts_at"]), "en") in afresh.body


def test_a_reminder_keeps_the_meetings_time_whatever_offset_it_came_in(db, uows, request):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    starts = (_now() + timedelta(hours=46)).astimezone(timezone(timedelta(hours=2)))
    event = meeting_event(case, starts_at=starts, facilitators=())
    assert event.payload["starts_at"].endswith("+02:00")
    on_meeting(uows, cases, event)
    assert remind(uows, cases) == 1
    when = local_text(starts, "en")
    assert when in one(db, message_type="meeting_scheduled").body
    assert when in one(db, message_type="meeting_reminder").body
    with db.transaction() as conn:
        assert aware(conn.execute(select(meetings.c.starts_at)).scalar_one()) == starts


# -- the referrer --------------------------------------------------------------------------------------
def test_the_referrer_hears_how_its_referral_is_going(db, uows):
    agency, referral_id, case_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    services.register_referrer_contact(uows, ADMIN, agency_id=agency, county=COUNTY,
                                       webhook_url="https://agency.example.org/hooks/mend",
                                       email="referrals@agency.example.org")
    received = referral_received(referral_id, agency)
    opened = case_event("case_opened", case_id, referral_id, agency)
    decided = case_event("eligibility_decided", case_id, referral_id, agency)
    closed = case_event("case_closed", case_id, referral_id, agency)
    assert [on_referral(uows, e) for e in (received, opened, decided, closed)] == [1, 1, 2, 1]
    assert [on_referral(uows, e) for e in (received, opened, decided, closed)] == [0, 0, 0, 0]

    hooks = stored(db, channel="webhook")
    assert {r.address for r in hooks} == {"https://agency.example.org/hooks/mend"}
    assert {r.recipient_kind for r in hooks} == {"referrer"} and {r.recipient_id for r in hooks} == {agency}
    bodies = {json.loads(r.body)["type"]: json.loads(r.body) for r in hooks}
    assert set(bodies) == {"referral.received", "referral.case_opened", "referral.accepted", "referral.closed"}
    assert bodies["referral.received"] == {
        "type": "referral.received", "timestamp": received.occurred_at,
        "data": {"referral_id": referral_id, "agency_reference": "CC/2026/004512", "status": "received",
                 "detail": "The referral was received."}}
    assert bodies["referral.closed"]["data"]["detail"] == "The case was closed (completed)."
    # Once the case is open the referrer's messages belong to it.
    assert one(db, event_id=received.event_id).case_id == ""
    assert one(db, event_id=closed.event_id).case_id == case_id
    email = one(db, channel="email")
    assert email.message_type == "case_accepted" and email.address == "referrals@agency.example.org"
    assert email.subject == "Referral CC/2026/004512 accepted for restorative justice"
    assert f"Our case reference is RJ-{case_id.replace('-', '')[:8].upper()}" in email.body
    assert json.loads(email.attachments) == []


def test_a_decision_before_the_referral_still_reaches_the_referrer(db, uows):
    agency, referral_id, case_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    services.register_referrer_contact(uows, ADMIN, agency_id=agency, county=COUNTY,
                                       webhook_url="https://a.example.org/h", email="referrals@agency.example.org")
    decided = case_event("eligibility_decided", case_id, referral_id, agency, decision="rejected",
                         reason="the person responsible denies the offence")
    assert on_referral(uows, decided) == 2
    rejected = one(db, channel="email")
    assert rejected.message_type == "case_rejected"
    assert "Reason: the person responsible denies the offence" in rejected.body
    assert json.loads(one(db, channel="webhook").body)["data"]["detail"] == \
        "The referral was not accepted: the person responsible denies the offence"
    # The late referral_received is still passed on, to the same agency.
    assert on_referral(uows, referral_received(referral_id, agency)) == 1
    assert len(stored(db, channel="webhook")) == 2


def test_an_early_decision_quotes_the_cases_own_reference(db, uows):
    agency, referral_id, case_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    services.register_referrer_contact(uows, ADMIN, agency_id=agency, county=COUNTY, webhook_url="",
                                       email="referrals@agency.example.org")
    assert on_referral(uows, case_event("eligibility_decided", case_id, referral_id, agency)) == 1
    email = one(db)
    assert email.case_id == case_id
    assert f"RJ-{case_id.replace('-', '')[:8].upper()}" in email.body


def test_without_a_referrer_contact_nothing_is_queued(db, uows):
    agency, referral_id, case_id = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    before = withheld("no_referrer_contact")
    for event in (referral_received(referral_id, agency), case_event("case_opened", case_id, referral_id, agency),
                  case_event("eligibility_decided", case_id, referral_id, agency)):
        assert on_referral(uows, event) == 0
    assert withheld("no_referrer_contact") == before + 3
    # A case event naming no agency, for a referral never seen: nothing, and no referral remembered.
    unknown = case_event("case_closed", str(uuid.uuid4()), str(uuid.uuid4()), "")
    assert on_referral(uows, unknown) == 0
    with uows() as uow:
        assert uow.repo.referral(unknown.payload["referral_id"]) is None
    # Another agency's contact does not receive this agency's news.
    services.register_referrer_contact(uows, ADMIN, agency_id=str(uuid.uuid4()), county=COUNTY,
                                       webhook_url="https://other.example.org/h", email="")
    assert on_referral(uows, case_event("case_closed", case_id, referral_id, agency)) == 0
    assert message_count(db) == 0


# -- staff alerts -------------------------------------------------------------------------------------
def test_staff_alerts_reach_the_right_role_in_the_right_county_only(db, uows):
    staff_contact(uows, "c1", "coordinator")
    staff_contact(uows, "cm1", "coordinator", "manager")
    staff_contact(uows, "c2", "coordinator", active=False)
    staff_contact(uows, "m1", "manager")
    staff_contact(uows, "f-1", "facilitator")
    staff_contact(uows, "c9", "coordinator", county=ELSEWHERE)
    staff_contact(uows, "m9", "manager", county=ELSEWHERE)
    case_id, owner = str(uuid.uuid4()), str(uuid.uuid4())
    overdue = new_event("cases", "outcome_item_overdue", COUNTY, {
        "case_id": case_id, "item_id": str(uuid.uuid4()), "kind": "community_work", "owner_participant_id": owner,
        "due_on": "2026-01-05"})
    breach = new_event("cases", "victims_code_breach", COUNTY, {
        "case_id": case_id, "clock": "rj_information", "participant_id": owner, "started_on": "2026-01-01",
        "due_on": "2026-01-05", "met_late": True})
    approval = new_event("risk", "risk_approval_requested", COUNTY, {
        "assessment_id": str(uuid.uuid4()), "case_id": case_id, "participant_id": owner, "level": "very_high",
        "assessor": "Morgan Evans"})
    assert [on_alert(uows, e) for e in (overdue, breach, approval)] == [2, 2, 2]
    assert [on_alert(uows, e) for e in (overdue, breach, approval)] == [0, 0, 0]
    assert sorted(r.recipient_id for r in stored(db, event_id=overdue.event_id)) == ["c1", "cm1"]
    assert sorted(r.recipient_id for r in stored(db, event_id=breach.event_id)) == ["c1", "cm1"]
    assert sorted(r.recipient_id for r in stored(db, event_id=approval.event_id)) == ["cm1", "m1"]
    assert {(r.recipient_kind, r.channel, r.county, r.case_id) for r in stored(db)} == {
        ("staff", "email", COUNTY, case_id)}
    to_c1 = one(db, event_id=overdue.event_id, recipient_id="c1")
    assert to_c1.address == "c1@cumbria.example.org" and to_c1.body.startswith("Dear Staff c1,")
    assert f"RJ-{case_id.replace('-', '')[:8].upper()}" in to_c1.subject and "Item: community work" in to_c1.body
    assert all(owner not in r.body for r in stored(db))                  # the item's owner is not named
    assert "Assessed by: Morgan Evans" in one(db, event_id=approval.event_id, recipient_id="m1").body
    # Nobody to tell in the county: nothing, and it says so.
    before = withheld("no_staff_contact")
    assert on_alert(uows, new_event("cases", "outcome_item_overdue", "cheshire", {"case_id": case_id})) == 0
    assert withheld("no_staff_contact") == before + 1


def test_an_unmet_victims_code_deadline_is_reported_as_unmet(db, uows):
    staff_contact(uows, "c1", "coordinator")
    on_alert(uows, new_event("cases", "victims_code_breach", COUNTY, {
        "case_id": str(uuid.uuid4()), "clock": "rj_information", "participant_id": str(uuid.uuid4()),
        "started_on": "2026-01-01", "due_on": "2026-01-05", "met_late": False}))
    body = one(db).body
    assert "has passed and has not been met" in body and "Please act on this today" in body


def test_an_item_one_day_overdue_says_one_day(db, uows):
    staff_contact(uows, "c1", "coordinator")
    yesterday = (_now().astimezone(LONDON).date() - timedelta(days=1)).isoformat()
    on_alert(uows, new_event("cases", "outcome_item_overdue", COUNTY, {
        "case_id": str(uuid.uuid4()), "kind": "apology", "due_on": yesterday}))
    assert "(1 day ago)" in one(db).body


def test_a_welsh_message_gives_dates_in_welsh(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    prefer(uows, cases, case, v, ["email"], language="cy")
    on_consent(uows, cases, consent_requested(case, v))
    row = one(db)
    assert row.language == "cy"
    reply_by = (_now() + timedelta(days=SETTINGS.consent_reply_days)).astimezone(LONDON)
    assert _MONTHS["cy"][reply_by.month - 1] in row.body
    assert _MONTHS["en"][reply_by.month - 1] not in row.body


def test_other_services_words_reach_people_as_labels(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    on_meeting(uows, cases, meeting_event(case, kind="conference", facilitators=()))
    assert "restorative meeting" in one(db).subject
    staff_contact(uows, "c1", "coordinator")
    breach = new_event("cases", "victims_code_breach", COUNTY, {
        "case_id": case["case_id"], "clock": "rj_information", "participant_id": v["participant_id"],
        "started_on": "2026-01-01", "due_on": "2026-01-05", "met_late": True})
    on_alert(uows, breach)
    assert "Entitlement: information about restorative justice" in one(db, event_id=breach.event_id).body


# -- the staff API -------------------------------------------------------------------------------------
def test_messages_are_seen_only_within_ones_counties(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    on_consent(uows, cases, consent_requested(case, v))
    row = one(db)
    listed = services.list_messages(uows, cases, AUDITOR, case["case_id"])
    assert [m.message_id for m in listed] == [row.message_id]
    assert audits(db, case["case_id"])[-1] == ("staff:a1", "notification.list", COUNTY, None)
    assert services.get_message(uows, MANAGER, row.message_id).body == row.body
    assert services.list_messages(uows, cases, OTHER_COUNTY_COORDINATOR, case["case_id"]) == []
    assert services.list_messages(uows, cases, COORDINATOR, str(uuid.uuid4())) == []
    with pytest.raises(NotFound):
        services.get_message(uows, OTHER_COUNTY_MANAGER, row.message_id)
    assert audits(db, row.message_id)[-1] == ("staff:m9", "notification.read_refused", None, None)
    with pytest.raises(NotFound):
        services.get_message(uows, COORDINATOR, str(uuid.uuid4()))
    for outsider in (FACILITATOR, ADMIN, Principal(kind="agency", subject="ag", roles=frozenset(),
                                                   counties=frozenset({COUNTY}))):
        with pytest.raises(PermissionDenied):
            services.list_messages(uows, cases, outsider, case["case_id"])
        with pytest.raises(PermissionDenied):
            services.get_message(uows, outsider, row.message_id)


def test_who_may_change_what(db, uows):
    cases = Cases()
    v, r = victim(), responsible()
    case = cases.open(v, r)
    template = dict(message_type="consent_requested", channel="sms", language="en", subject="",
                    body="{{ service_name }}: please call {{ service_phone }}. Ref {{ case_reference }}")
    # Auditors read, never change.
    with pytest.raises(PermissionDenied):
        prefer(uows, cases, case, v, ["sms"], principal=AUDITOR)
    with pytest.raises(PermissionDenied):
        release(uows, cases, case, about=r, to=v, principal=AUDITOR)
    # Another county's coordinator is told the case does not exist; the refusal is audited.
    with pytest.raises(NotFound):
        prefer(uows, cases, case, v, ["sms"], principal=OTHER_COUNTY_COORDINATOR)
    with pytest.raises(NotFound):
        release(uows, cases, case, about=r, to=v, principal=OTHER_COUNTY_COORDINATOR)
    assert ("staff:c9", "notification.preferences_refused", None, None) in audits(db, case["case_id"])
    assert ("staff:c9", "notification.release_refused", None, None) in audits(db, case["case_id"])
    with pytest.raises(NotFound):
        services.get_contact_preferences(uows, cases, OTHER_COUNTY_MANAGER, case_id=case["case_id"],
                                         participant_id=v["participant_id"])
    for outsider in (FACILITATOR, ADMIN):
        with pytest.raises(PermissionDenied):
            prefer(uows, cases, case, v, ["sms"], principal=outsider)
    # Templates: managers save; coordinators and auditors may list and preview only.
    for principal in (COORDINATOR, AUDITOR, ADMIN, FACILITATOR):
        with pytest.raises(PermissionDenied):
            services.save_template(uows, principal, **template)
    assert services.preview_template(COORDINATOR, **template).body.startswith(
        "Cumbria Restorative Justice Service: please call 01768 555 0142.")
    with pytest.raises(PermissionDenied):
        services.preview_template(FACILITATOR, **template)
    with pytest.raises(PermissionDenied):
        services.list_templates(uows, FACILITATOR)
    # Contacts: admins register referrers; admins and managers keep staff contacts.
    for principal in (MANAGER, COORDINATOR, AUDITOR):
        with pytest.raises(PermissionDenied):
            services.register_referrer_contact(uows, principal, agency_id=str(uuid.uuid4()), county=COUNTY,
                                               webhook_url="https://a.example.org/h", email="")
    for principal in (COORDINATOR, AUDITOR, FACILITATOR):
        with pytest.raises(PermissionDenied):
            services.set_staff_contact(uows, principal, county=COUNTY, subject="x", name="X", email="x@example.org",
                                       roles=["coordinator"], language="en", active=True)
    services.set_staff_contact(uows, MANAGER, county=COUNTY, subject="x", name="X", email="x@example.org",
                               roles=["coordinator"], language="en", active=True)

    # Nothing the refused calls tried was stored.
    with uows() as uow:
        assert uow.repo.preferences(case["case_id"]) == {} and uow.repo.releases(case["case_id"]) == set()
        assert uow.repo.templates() == []
        assert [s.subject for s in uow.repo.staff(COUNTY)] == ["x"]
    # The coordinator may.
    prefer(uows, cases, case, v, ["sms"])
    release(uows, cases, case, about=r, to=v)
    with uows() as uow:
        assert list(uow.repo.preferences(case["case_id"])) == [v["participant_id"]]
        assert uow.repo.releases(case["case_id"]) == {(r["participant_id"], v["participant_id"], "given_name")}


def test_an_admin_registers_a_referrer_and_sees_its_signing_secret_once(db, uows):
    agency = str(uuid.uuid4())
    made = services.register_referrer_contact(uows, ADMIN, agency_id=agency, county=COUNTY,
                                              webhook_url=" https://agency.example.org/hooks/mend ",
                                              email="referrals@agency.example.org")
    secret = made["webhook_secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[len("whsec_"):])) == 32
    assert made["webhook_url"] == "https://agency.example.org/hooks/mend" and made["active"] is True
    with uows() as uow:
        assert uow.repo.referrer(agency).webhook_secret == secret
    # The secret is in no audit record, no event.
    assert audits(db, agency) == [("staff:ad1", "notification.referrer_contact", COUNTY, None)]
    assert all(secret not in json.dumps(e) for e in outbox(db))
    # Registering again rotates it; an email-only contact has none.
    again = services.register_referrer_contact(uows, ADMIN, agency_id=agency, county=COUNTY,
                                               webhook_url="https://agency.example.org/hooks/mend", email="")
    assert again["webhook_secret"].startswith("whsec_") and again["webhook_secret"] != secret
    email_only = services.register_referrer_contact(uows, ADMIN, agency_id=str(uuid.uuid4()), county=COUNTY,
                                                    webhook_url="", email="x@agency.example.org")
    assert email_only["webhook_secret"] == ""


def test_bad_staff_input_is_refused_naming_each_field(db, uows):
    cases = Cases()
    v, r = victim(), responsible()
    case = cases.open(v, r)
    cid, vid = case["case_id"], v["participant_id"]

    def refused(call, **kw) -> list[str]:
        with pytest.raises(ValidationFailed) as raised:
            call(**kw)
        return fields(raised)

    prefs = dict(case_id=cid, participant_id=vid, channels=["email"], language="en", quiet_start="", quiet_end="")
    setp = lambda **kw: services.set_contact_preferences(uows, cases, COORDINATOR, **{**prefs, **kw})  # noqa: E731
    assert refused(setp, case_id="not-a-case", participant_id="nobody") == ["case_id", "participant_id"]
    assert refused(setp, channels=["fax", "email", "email", "webhook"], language="fr", quiet_start="25:00") == [
        "channels[0]", "channels[3]", "channels", "language", "quiet_start"]
    assert refused(setp, quiet_start="21:00") == ["quiet_end"]
    assert refused(setp, quiet_end="08:00") == ["quiet_start"]
    assert refused(setp, quiet_start="9pm", quiet_end="8am") == ["quiet_start", "quiet_end"]
    assert refused(setp, participant_id=str(uuid.uuid4())) == ["participant_id"]

    rel = dict(case_id=cid, about_participant_id=r["participant_id"], to_participant_id=vid,
               fields=["given_name"], reason="agreed")
    relp = lambda **kw: services.release_details(uows, cases, COORDINATOR, **{**rel, **kw})  # noqa: E731
    assert refused(relp, to_participant_id=r["participant_id"], fields=["address", "given_name", "phone"],
                   reason="  ") == ["to_participant_id", "fields[0]", "fields[2]", "reason"]
    assert refused(relp, fields=[], reason="x" * 2001) == ["fields", "reason"]
    assert refused(relp, about_participant_id=str(uuid.uuid4())) == ["about_participant_id"]

    reg = dict(agency_id=str(uuid.uuid4()), county=COUNTY, webhook_url="https://a.example.org/h", email="")
    regp = lambda **kw: services.register_referrer_contact(uows, ADMIN, **{**reg, **kw})  # noqa: E731
    assert refused(regp, agency_id="x", county=ELSEWHERE, webhook_url="ftp://a.example.org/h",
                   email="not an email") == ["agency_id", "county", "webhook_url", "email"]
    for url in ("javascript:alert(1)", "https://", "a.example.org/h", "https://a.example.org/" + "x" * 2000):
        assert refused(regp, webhook_url=url) == ["webhook_url"], url
    assert refused(regp, webhook_url="", email="") == ["webhook_url"]
    for email in ("nobody", "@example.org", "a@b", "a b@example.org", "a@example.org\x00"):
        assert refused(regp, email=email) == ["email"], email

    st = dict(county=COUNTY, subject="c1", name="C One", email="c1@example.org", roles=["coordinator"],
              language="en", active=True)
    stp = lambda **kw: services.set_staff_contact(uows, ADMIN, **{**st, **kw})  # noqa: E731
    assert refused(stp, county=ELSEWHERE, subject="", name="", email="c1", roles=["admin", "manager", "auditor"],
                   language="de") == ["county", "subject", "name", "email", "roles[0]", "roles[2]", "language"]
    assert refused(stp, email="") == ["email"]

    for call, kw in ((services.list_messages, dict(uow_factory=uows, cases=cases, principal=COORDINATOR,
                                                   case_id="nope")),
                     (services.get_message, dict(uow_factory=uows, principal=COORDINATOR, message_id="nope"))):
        assert refused(call, **kw) in (["case_id"], ["message_id"])
    with pytest.raises(ValidationFailed):
        services.list_templates(uows, COORDINATOR, message_type="nope")
    # None of it was stored.
    with uows() as uow:
        assert uow.repo.preferences(cid) == {} and uow.repo.releases(cid) == set() and uow.repo.staff(COUNTY) == []
        assert uow.repo.referrer(reg["agency_id"]) is None


SSTI = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ recipient_name.__class__ }}",
    "{{ recipient_name|attr('__class__') }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ lipsum.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ config }}",
    "{{ request.application }}",
    "{% for i in range(99999999) %}x{% endfor %}",
    "{{ 'x' * 99999999 }}",
    "{{ 9 ** 999999 }}",
    "{{ recipient_name|replace('a', recipient_name * 9) }}",
    "{% set x = recipient_name %}{{ x }}",
    "{% include '/etc/passwd' %}",
    "{% extends 'base.html' %}",
    "{% macro m() %}x{% endmacro %}{{ m() }}",
    "{{ {'a': recipient_name} }}",
    "{{ recipient_name[0] }}",
    "{{ recipient_name.upper() }}",
]


def test_a_template_that_reaches_past_its_values_is_refused(db, uows):
    for body in SSTI:
        with pytest.raises(ValidationFailed) as raised:
            services.save_template(uows, MANAGER, message_type="consent_requested", channel="email", language="en",
                                   subject="About your case", body=body)
        assert set(fields(raised)) == {"body"}, body
        with pytest.raises(ValidationFailed):
            services.preview_template(MANAGER, message_type="consent_requested", channel="email", language="en",
                                      subject="About your case", body=body)
        with pytest.raises(ValidationFailed) as raised:      # in a subject too
            services.save_template(uows, MANAGER, message_type="consent_requested", channel="email", language="en",
                                   subject=body, body="Dear {{ recipient_name }}")
        assert set(fields(raised)) == {"subject"}, body
    with uows() as uow:
        assert uow.repo.templates() == []


def test_template_mistakes_are_refused_naming_each_field(db, uows):
    def refused(**kw) -> list[str]:
        base = dict(message_type="consent_requested", channel="email", language="en", subject="Hello",
                    body="Dear {{ recipient_name }}")
        with pytest.raises(ValidationFailed) as raised:
            services.save_template(uows, MANAGER, **{**base, **kw})
        return fields(raised)

    assert refused(body="Dear {{ recipient_name }") == ["body"]                      # syntax
    assert refused(body="Dear {{ victim_address }}") == ["body"]                     # not a value of the type
    assert refused(body="Also: {{ other_party_name }}") == ["body"]                  # not one of consent's values
    assert refused(subject="Hi {{ nope }}", body="{% if %}") == ["subject", "body"]
    assert refused(subject="Hello\nBcc: everyone@example.org") == ["subject"]
    assert refused(subject="") == ["subject"]                                         # email needs one
    assert refused(channel="sms", subject="Hi") == ["subject"]                        # a text has none
    assert refused(body="   ") == ["body"]
    assert refused(body="x" * 10_001) == ["body"]
    assert refused(body="Hi\x07 there") == ["body"]
    assert refused(message_type="nope", channel="fax", language="fr") == ["message_type", "channel", "language"]
    assert refused(channel="webhook") == ["channel"]
    assert refused(message_type="outcome_item_overdue", channel="sms") == ["channel"]
    with uows() as uow:
        assert uow.repo.templates() == []


def test_a_saved_template_is_a_new_version_used_from_then_on(db, uows):
    cases = Cases()
    v = victim()
    case = cases.open(v)
    prefer(uows, cases, case, v, ["email", "sms"])
    body = "{{ service_name }}: please call {{ service_phone }} about {{ case_reference }} by {{ reply_by }}."
    first = services.save_template(uows, MANAGER, message_type="consent_requested", channel="sms", language="en",
                                   subject="", body=body)
    second = services.save_template(uows, MANAGER, message_type="consent_requested", channel="sms", language="en",
                                    subject="", body="Call {{ service_phone }}. Ref {{ case_reference }}")
    assert (first["version"], second["version"], second["saved_by"]) == (2, 3, "m1")
    assert audits(db, "consent_requested/sms/en/v3") == [("staff:m1", "notification.template_saved", None, None)]
    listed = services.list_templates(uows, AUDITOR, "consent_requested")
    assert [(t["channel"], t["language"], t["version"]) for t in listed if t["channel"] == "sms"] == [
        ("sms", "cy", 1), ("sms", "en", 1), ("sms", "en", 2), ("sms", "en", 3)]
    on_consent(uows, cases, consent_requested(case, v))
    sms = one(db, channel="sms")
    assert sms.template_version == 3
    assert sms.body == f"Call 0300 000 0000. Ref RJ-{case['case_id'].replace('-', '')[:8].upper()}"
    assert one(db, channel="email").template_version == 1            # the built-in one, untouched
