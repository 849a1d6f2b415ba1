from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from mend.cases.v1 import cases_pb2 as pb
from mend.cases.v1 import cases_pb2_grpc as pb_grpc
from mend_common.grpc_server import current_principal
from mend_common.proto_convert import enum_to_plain, plain_to_enum

from ..service_layer import services

STAGE_ENUM = pb.DESCRIPTOR.enum_types_by_name["Stage"]
SERVICE_NAMES = ["mend.cases.v1.CaseService"]


def _ts(dt) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def case_to_pb(case) -> pb.Case:
    return pb.Case(
        case_id=case.case_id, referral_id=case.referral_id, county=case.county,
        stage=plain_to_enum(STAGE_ENUM, case.stage), initiated_by=case.initiated_by,
        offence_type=case.offence_type, offence_category=case.offence_category, offence_date=case.offence_date,
        offence_flags=case.offence_flags, referring_agency_id=case.referring_agency_id,
        agency_reference=case.agency_reference, opened_at=_ts(case.opened_at),
        participants=[pb.Participant(
            participant_id=p.participant_id, role=p.role, given_name=p.given_name, family_name=p.family_name,
            date_of_birth=p.date_of_birth or "", age=p.age or 0, is_youth=p.is_youth,
            vulnerabilities=p.vulnerabilities, consent_to_contact=p.consent_to_contact,
            preferred_channel=p.preferred_channel) for p in case.participants],
        history=[pb.StageChange(stage=plain_to_enum(STAGE_ENUM, h.stage), at=_ts(h.at), by=h.by, reason=h.reason)
                 for h in case.history])


class CaseServicer(pb_grpc.CaseServiceServicer):
    def __init__(self, uow_factory):
        self.uow = uow_factory

    def GetCase(self, request, context):
        return case_to_pb(services.get_case(self.uow, current_principal(), request.case_id))

    def ListCases(self, request, context):
        stage = enum_to_plain(STAGE_ENUM, request.stage)
        items, token = services.list_cases(
            self.uow, current_principal(), county=request.county,
            stage=stage if isinstance(stage, str) else (str(stage) if stage is not None else None),
            page_size=request.page_size, page_token=request.page_token)
        return pb.ListCasesResponse(cases=[case_to_pb(c) for c in items], next_page_token=token)


def registrars(uow_factory):
    return [lambda server: pb_grpc.add_CaseServiceServicer_to_server(CaseServicer(uow_factory), server)]
