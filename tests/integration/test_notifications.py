"""The notifications service over the running region (real gRPC, RabbitMQ, nameko workers, a
database on SQLite and on PostgreSQL), writing to a local SMTP server, a local SMS and letter
provider and a local webhook receiver: referrers hear how referrals go (signed webhooks),
participants only by channels they agreed to, staff get their alerts, meetings come with .ics
invitations and reminders, every message is sent once, and failures are visible."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import grpc
import icalendar
import pytest

from mend.cases.v1 import cases_pb2 as cases_pb
from mend.notifications.v1 import notifications_pb2 as pb
from mend_common.envelope import new_event
from mend_common.testing.webhook_receiver import WebhookReceiver
from tests.support.case_flow import Cases, opened_case, parties, refused
from tests.support.mend import publish
from tests.support.waiting import wait_for


@pytest.fixture
def receiver():
    with WebhookReceiver() as r:
        yield r


def admin_stub(tenant):
    return tenant.notifications_stub("admin", subject="it-admin")


def register_staff(tenant, subject: str, email: str, roles: list[str], language: str = "en"):
    stub, md = tenant.notifications_stub("manager", subject="mgr-1")
    return stub.SetStaffContact(pb.StaffContact(county=tenant.county, subject=subject, name=subject.title(),
                                                email=email, roles=roles, language=language, active=True),
                                metadata=md, timeout=10)


def sent_to(stack, address: str) -> list:
    return [m for m in stack.smtp.messages if address in str(m["To"])]


def of_case(stack, stub, md, case_id: str) -> list:
    """The emails the local mail server got for one case's messages (by Message-ID)."""
    ids = {f"<{m.message_id}@mend>" for m in stub.ListMessages(pb.ListMessagesRequest(case_id=case_id), metadata=md,
                                                               timeout=10).messages}
    return [m for m in stack.smtp.messages if str(m["Message-ID"]) in ids]


def meeting_event(tenant, case, event_type: str = "meeting_scheduled", *, meeting_id: str | None = None,
                  starts_in: timedelta = timedelta(days=7), facilitators=("fac-1",)) -> dict:
    starts = datetime.now(timezone.utc).replace(microsecond=0) + starts_in
    people = parties(case)
    return new_event("scheduling", event_type, tenant.county, {
        "meeting_id": meeting_id or str(uuid.uuid4()), "case_id": case.case_id, "kind": "conference",
        "starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=2)).isoformat(),
        "venue_name": "Carlisle Community Centre", "venue_address": "1 Market Street, Carlisle CA3 8QT",
        "participant_ids": [people["victim"], people["responsible_person"]],
        "facilitator_ids": list(facilitators)}).to_dict()


def test_the_referrer_hears_by_signed_webhook_and_email(stack, tenant, receiver):
    stub, md = admin_stub(tenant)
    contact = stub.RegisterReferrerContact(pb.RegisterReferrerContactRequest(
        agency_id=tenant.agency_id, county=tenant.county, webhook_url=receiver.url,
        email="referrals@constabulary.example"), metadata=md, timeout=10)
    assert contact.webhook_secret.startswith("whsec_")
    referral_id, case_id = opened_case(tenant)
    Cases(tenant).DecideEligibility(case_id=case_id, accepted=True, facts_acknowledged=True, reason="")
    received = wait_for(lambda: len(receiver.accepted()) >= 3 and receiver.accepted(), timeout=60)
    bodies = [json.loads(r.body) for r in received]
    assert {b["type"] for b in bodies} == {"referral.received", "referral.case_opened", "referral.accepted"}
    assert all(b["data"]["referral_id"] == referral_id for b in bodies)
    # Standard Webhooks: every request verifies with the secret, and only with it.
    assert len(receiver.verified(contact.webhook_secret)) == len(received)
    assert receiver.verified("whsec_" + "A" * 44) == []
    mail = wait_for(lambda: sent_to(stack, "referrals@constabulary.example"), timeout=60)
    assert len(mail) == 1 and "accepted" in mail[0]["Subject"].lower()


def test_consent_is_requested_only_by_channels_agreed_to(stack, tenant):
    cases = Cases(tenant)
    _, case_id = opened_case(tenant)
    case = cases.DecideEligibility(case_id=case_id, accepted=True, facts_acknowledged=True, reason="")
    victim, responsible = parties(case)["victim"], parties(case)["responsible_person"]
    supporter = cases.AddParticipant(case_id=case_id, role="supporter", given_name="Sam", family_name="Helper",
                                     consent_to_contact=True,
                                     contact=cases_pb.Contact(phone="+447700900123", preferred_channel="sms"))
    stub, md = tenant.notifications_stub("coordinator", subject="coord-1")
    # The victim agreed to email and SMS, in Welsh, but gave no phone number; the supporter agreed
    # to SMS; the responsible person gave no consent to contact.
    stub.SetContactPreferences(pb.SetContactPreferencesRequest(
        case_id=case_id, participant_id=victim, channels=["email", "sms"], language="cy"), metadata=md, timeout=10)
    for person in (victim, responsible, supporter.participant_id):
        cases.RecordConsent(case_id=case_id, participant_id=person, status="requested")
    messages = wait_for(lambda: len(found := [m for m in stub.ListMessages(
        pb.ListMessagesRequest(case_id=case_id), metadata=md, timeout=10).messages
        if m.message_type == "consent_requested" and m.status == "sent"]) >= 2 and found, timeout=60)
    assert {(m.recipient_id, m.channel, m.language) for m in messages} == {(victim, "email", "cy"),
                                                                         (supporter.participant_id, "sms", "en")}
    mail = of_case(stack, stub, md, case_id)
    assert len(mail) == 1 and "jo@example.org" in str(mail[0]["To"])
    sms_id = next(m.message_id for m in messages if m.channel == "sms")
    assert [s["reference"] for s in stack.provider.sms if s["reference"] == sms_id] == [sms_id]
    # A consent request never names the other party.
    mail = mail[0]
    assert "Lee" not in mail.get_content() and "Doe" not in mail.get_content()


def test_a_meeting_invitation_reminders_and_cancellation_go_once_each(stack, tenant):
    cases = Cases(tenant)
    _, case_id = opened_case(tenant)
    case = cases.DecideEligibility(case_id=case_id, accepted=True, facts_acknowledged=True, reason="")
    register_staff(tenant, "fac-1", "fac1@mend.example", ["facilitator"])
    # Starts in 47 hours: the 48-hour reminder is due at once, the 24-hour one not yet.
    scheduled = meeting_event(tenant, case, starts_in=timedelta(hours=47))
    publish(stack.amqp_uri, scheduled, exchange="scheduling.events", routing_key="meeting_scheduled")
    publish(stack.amqp_uri, scheduled, exchange="scheduling.events", routing_key="meeting_scheduled")   # again
    invitations = wait_for(lambda: len(found := sent_to(stack, "fac1@mend.example")) >= 2 and found, timeout=60)
    stub, md = tenant.notifications_stub("coordinator", subject="coord-1")
    victim_mail = wait_for(lambda: len(found := [m for m in of_case(stack, stub, md, case.case_id)
                                                 if "jo@example.org" in str(m["To"])]) >= 2 and found, timeout=60)
    subjects = sorted(str(m["Subject"]) for m in victim_mail)
    assert len(victim_mail) == 2, subjects          # one invitation and one reminder, however often the event came
    invitation = next(m for m in invitations if m.get_content_type() == "multipart/mixed"
                      and "remind" not in str(m["Subject"]).lower())
    ics = next(part for part in invitation.walk() if part.get_content_type() == "text/calendar")
    calendar = icalendar.Calendar.from_ical(ics.get_payload(decode=True))
    event = calendar.walk("VEVENT")[0]
    assert str(calendar["METHOD"]) == "REQUEST" and str(event["UID"]) == f"{scheduled['payload']['meeting_id']}@mend"
    assert event.decoded("DTSTART") == datetime.fromisoformat(scheduled["payload"]["starts_at"])

    cancelled = meeting_event(tenant, case, "meeting_cancelled", meeting_id=scheduled["payload"]["meeting_id"],
                              starts_in=timedelta(hours=47))
    publish(stack.amqp_uri, cancelled, exchange="scheduling.events", routing_key="meeting_cancelled")
    after = wait_for(lambda: len(found := sent_to(stack, "fac1@mend.example")) >= 3 and found, timeout=60)
    cancellation = [m for m in after if m not in invitations][0]
    ics = next(part for part in cancellation.walk() if part.get_content_type() == "text/calendar")
    calendar = icalendar.Calendar.from_ical(ics.get_payload(decode=True))
    assert str(calendar["METHOD"]) == "CANCEL" and str(calendar.walk("VEVENT")[0]["STATUS"]) == "CANCELLED"
    ids = stack.smtp.message_ids()
    assert len(ids) == len(set(ids))                 # nothing sent twice


def test_staff_alerts_reach_the_right_role(stack, tenant):
    register_staff(tenant, "coord-9", "coordinator9@mend.example", ["coordinator"])
    register_staff(tenant, "mgr-9", "manager9@mend.example", ["manager"])
    case_id = str(uuid.uuid4())
    publish(stack.amqp_uri, new_event("cases", "victims_code_breach", tenant.county, {
        "case_id": case_id, "clock": "rj_information", "due_on": "2026-01-05", "participant_id": str(uuid.uuid4()),
        "late": False}).to_dict(), exchange="cases.events", routing_key="victims_code_breach")
    publish(stack.amqp_uri, new_event("risk", "risk_approval_requested", tenant.county, {
        "assessment_id": str(uuid.uuid4()), "case_id": case_id, "participant_id": str(uuid.uuid4()),
        "level": "high", "assessor": "coord-9"}).to_dict(), exchange="risk.events", routing_key="risk_approval_requested")
    breach = wait_for(lambda: sent_to(stack, "coordinator9@mend.example"), timeout=60)
    approval = wait_for(lambda: sent_to(stack, "manager9@mend.example"), timeout=60)
    assert len(breach) == 1 and len(approval) == 1
    assert "RJ-" + case_id.replace("-", "")[:8].upper() in breach[0].get_content()


def test_a_refused_address_fails_visibly_and_reaches_the_dead_letter_queue(stack, tenant):
    stack.smtp.reject_recipient("refused@mend.example", code=550)
    register_staff(tenant, "coord-x", "refused@mend.example", ["coordinator"])
    case_id = str(uuid.uuid4())
    publish(stack.amqp_uri, new_event("cases", "outcome_item_overdue", tenant.county, {
        "case_id": case_id, "item_id": str(uuid.uuid4()), "kind": "apology", "owner_participant_id": "p",
        "due_on": "2026-01-05"}).to_dict(), exchange="cases.events", routing_key="outcome_item_overdue")
    stub, md = tenant.notifications_stub("coordinator", subject="coord-1")
    failed = wait_for(lambda: [m for m in stub.ListMessages(pb.ListMessagesRequest(case_id=case_id), metadata=md,
                                                             timeout=10).messages if m.status == "failed"], timeout=60)
    assert failed[0].channel == "email" and "550" in failed[0].last_error
    dead = wait_for(lambda: (stack.vhost.queue("notifications.delivery.dlq") or {}).get("messages", 0) >= 1
                    and stack.vhost.get_messages("notifications.delivery.dlq", 50), timeout=60)
    assert any(json.loads(m["payload"])["payload"]["message_id"] == failed[0].message_id for m in dead)
    # Fixed, and retried by a coordinator: sent.
    stack.smtp.allow_recipient("refused@mend.example")
    assert stub.RetryMessage(pb.GetMessageRequest(message_id=failed[0].message_id), metadata=md,
                             timeout=10).status == "queued"
    wait_for(lambda: stub.GetMessage(pb.GetMessageRequest(message_id=failed[0].message_id), metadata=md,
                                     timeout=10).status == "sent", timeout=60)


def test_bad_input_names_the_field_and_the_rule(tenant):
    _, case_id = opened_case(tenant)
    stub, md = tenant.notifications_stub("coordinator", subject="coord-1")
    code, _, details = refused(lambda: stub.SetContactPreferences(pb.SetContactPreferencesRequest(
        case_id=case_id, participant_id=str(uuid.uuid4()), channels=["pigeon", "email", "email"], language="fr",
        quiet_start="25:00"), metadata=md, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert {f for f, _ in details} >= {"channels[0]", "channels", "language", "quiet_start"}
    manager, mmd = tenant.notifications_stub("manager", subject="mgr-1")
    code, _, details = refused(lambda: manager.SaveTemplate(pb.SaveTemplateRequest(
        message_type="meeting_reminder", channel="email", language="en", subject="Hi",
        body="{{ ''.__class__.__mro__ }} {% if %}"), metadata=mmd, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details and details[0][0] == "body"
    code, _, _ = refused(lambda: stub.SaveTemplate(pb.SaveTemplateRequest(
        message_type="meeting_reminder", channel="email", language="en", subject="Hi", body="Hello"),
        metadata=md, timeout=10))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    outsider = tenant.stack.token(["coordinator", "manager"], ["another-county"], subject="outsider")
    code, _, _ = refused(lambda: stub.ReleaseDetails(pb.ReleaseDetailsRequest(
        case_id=case_id, about_participant_id=str(uuid.uuid4()), to_participant_id=str(uuid.uuid4()),
        fields=["given_name"], reason="agreed"), metadata=(("authorization", f"Bearer {outsider}"),), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND
    assert list(stub.ListMessages(pb.ListMessagesRequest(case_id=case_id),
                                  metadata=(("authorization", f"Bearer {outsider}"),), timeout=10).messages) == []
