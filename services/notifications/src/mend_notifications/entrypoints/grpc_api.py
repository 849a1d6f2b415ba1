"""gRPC entrypoint of the notifications service: translates messages and calls the service layer."""
from __future__ import annotations

import json


from mend.notifications.v1 import notifications_pb2 as pb
from mend.notifications.v1 import notifications_pb2_grpc as pb_grpc
from mend_common.grpc_server import current_principal
from mend_common.proto_convert import timestamp

from ..service_layer import services

SERVICE_NAMES = ["mend.notifications.v1.NotificationService"]


def message_to_pb(row) -> pb.Message:
    return pb.Message(
        message_id=row.message_id, case_id=row.case_id, county=row.county, message_type=row.message_type,
        channel=row.channel, recipient_kind=row.recipient_kind, recipient_id=row.recipient_id,
        language=row.language, template_version=row.template_version, subject=row.subject, status=row.status,
        attempts=row.attempts, last_error=row.last_error, created_at=timestamp(row.created_at),
        next_attempt_at=timestamp(row.next_attempt_at), sent_at=timestamp(row.sent_at), delivered_at=timestamp(row.delivered_at),
        event_id=row.event_id)


def template_to_pb(t: dict) -> pb.Template:
    return pb.Template(message_type=t["message_type"], channel=t["channel"], language=t["language"],
                       version=t["version"], subject=t["subject"], body=t["body"], saved_by=t["saved_by"],
                       saved_at=timestamp(t["saved_at"]))


class NotificationServicer(pb_grpc.NotificationServiceServicer):
    def __init__(self, uow_factory, cases):
        self.uow, self.cases = uow_factory, cases

    def ListMessages(self, request, context):
        rows = services.list_messages(self.uow, self.cases, current_principal(), request.case_id)
        return pb.ListMessagesResponse(messages=[message_to_pb(r) for r in rows])

    def GetMessage(self, request, context):
        return message_to_pb(services.get_message(self.uow, current_principal(), request.message_id))

    def RetryMessage(self, request, context):
        return message_to_pb(services.retry_message(self.uow, current_principal(), request.message_id))

    def SetContactPreferences(self, request, context):
        row = services.set_contact_preferences(
            self.uow, self.cases, current_principal(), case_id=request.case_id, participant_id=request.participant_id,
            channels=list(request.channels), language=request.language, quiet_start=request.quiet_start,
            quiet_end=request.quiet_end)
        return pb.ContactPreferences(case_id=row["case_id"], participant_id=row["participant_id"],
                                     channels=json.loads(row["channels"]), language=row["language"],
                                     quiet_start=row["quiet_start"], quiet_end=row["quiet_end"],
                                     updated_by=row["updated_by"])

    def GetContactPreferences(self, request, context):
        return pb.ContactPreferences(**services.get_contact_preferences(
            self.uow, self.cases, current_principal(), case_id=request.case_id,
            participant_id=request.participant_id))

    def ReleaseDetails(self, request, context):
        return pb.ReleaseDetailsResponse(released=services.release_details(
            self.uow, self.cases, current_principal(), case_id=request.case_id,
            about_participant_id=request.about_participant_id, to_participant_id=request.to_participant_id,
            fields=list(request.fields), reason=request.reason))

    def SaveTemplate(self, request, context):
        return template_to_pb(services.save_template(
            self.uow, current_principal(), message_type=request.message_type, channel=request.channel,
            language=request.language, subject=request.subject, body=request.body))

    def ListTemplates(self, request, context):
        return pb.ListTemplatesResponse(templates=[template_to_pb(t) for t in services.list_templates(
            self.uow, current_principal(), request.message_type)])

    def PreviewTemplate(self, request, context):
        rendered = services.preview_template(current_principal(), message_type=request.message_type,
                                             channel=request.channel, language=request.language,
                                             subject=request.subject, body=request.body)
        return pb.Preview(subject=rendered.subject, body=rendered.body)

    def SetStaffContact(self, request, context):
        row = services.set_staff_contact(self.uow, current_principal(), county=request.county,
                                         subject=request.subject, name=request.name, email=request.email,
                                         roles=list(request.roles), language=request.language, active=request.active)
        return pb.StaffContact(county=row["county"], subject=row["subject"], name=row["name"], email=row["email"],
                               roles=json.loads(row["roles"]), language=row["language"], active=row["active"])

    def RegisterReferrerContact(self, request, context):
        row = services.register_referrer_contact(self.uow, current_principal(), agency_id=request.agency_id,
                                                 county=request.county, webhook_url=request.webhook_url,
                                                 email=request.email)
        return pb.ReferrerContact(agency_id=row["agency_id"], county=row["county"], webhook_url=row["webhook_url"],
                                  email=row["email"], webhook_secret=row["webhook_secret"])


def registrars(uow_factory, cases):
    servicer = NotificationServicer(uow_factory, cases)
    return [lambda server: pb_grpc.add_NotificationServiceServicer_to_server(servicer, server)]
