"""gRPC servicers: translate proto <-> plain data and call the service layer. Nothing else."""
from __future__ import annotations


from mend.referrals.v1 import referrals_pb2 as pb
from mend.referrals.v1 import referrals_pb2_grpc as pb_grpc
from mend_common.grpc_server import current_principal
from mend_common.proto_convert import enum_to_plain, message_to_plain, plain_to_enum, timestamp

from ..service_layer import services

STATUS_ENUM = pb.DESCRIPTOR.enum_types_by_name["ReferralStatus"]
AGENCY_KIND_ENUM = pb.DESCRIPTOR.enum_types_by_name["AgencyKind"]


def referral_to_pb(referral) -> pb.Referral:
    return pb.Referral(
        referral_id=referral.referral_id, agency_id=referral.agency_id,
        agency_reference=referral.agency_reference, county=referral.county,
        status=plain_to_enum(STATUS_ENUM, referral.status), case_id=referral.case_id or "",
        received_at=timestamp(referral.received_at),
        history=[pb.StatusChange(status=plain_to_enum(STATUS_ENUM, h["status"]), at=timestamp(h["at"]), detail=h["detail"])
                 for h in referral.history])


def agency_to_pb(agency: dict) -> pb.Agency:
    return pb.Agency(agency_id=agency["agency_id"], name=agency["name"], county=agency["county"],
                     kind=plain_to_enum(AGENCY_KIND_ENUM, agency["kind"]), created_at=timestamp(agency["created_at"]))


class ReferralServicer(pb_grpc.ReferralServiceServicer):
    def __init__(self, uow_factory):
        self.uow = uow_factory

    def SubmitReferral(self, request, context):
        draft = message_to_plain(request.referral) if request.HasField("referral") else None
        referral, replayed = services.submit_referral(self.uow, current_principal(), request.request_id, draft)
        return pb.SubmitReferralResponse(referral_id=referral.referral_id,
                                         status=plain_to_enum(STATUS_ENUM, referral.status),
                                         received_at=timestamp(referral.received_at), replayed=replayed)

    def GetReferral(self, request, context):
        return referral_to_pb(services.get_referral(self.uow, current_principal(), request.referral_id))

    def ListReferrals(self, request, context):
        status = enum_to_plain(STATUS_ENUM, request.status)
        items, token = services.list_referrals(self.uow, current_principal(), page_size=request.page_size,
                                               page_token=request.page_token,
                                               status=status if isinstance(status, str) else (str(status) if status else None))
        return pb.ListReferralsResponse(referrals=[referral_to_pb(r) for r in items], next_page_token=token)


class AgencyAdminServicer(pb_grpc.AgencyAdminServiceServicer):
    def __init__(self, uow_factory):
        self.uow = uow_factory

    def CreateAgency(self, request, context):
        kind = enum_to_plain(AGENCY_KIND_ENUM, request.kind)
        agency = services.create_agency(self.uow, current_principal(), request.name, request.county,
                                        kind if isinstance(kind, str) else "")
        return agency_to_pb(agency)

    def ListAgencies(self, request, context):
        return pb.ListAgenciesResponse(agencies=[agency_to_pb(a) for a in services.list_agencies(
            self.uow, current_principal(), request.county)])

    def IssueApiKey(self, request, context):
        key_id, api_key = services.issue_agency_key(self.uow, current_principal(), request.agency_id, request.label)
        return pb.IssueApiKeyResponse(key_id=key_id, api_key=api_key)

    def RevokeApiKey(self, request, context):
        return pb.RevokeApiKeyResponse(revoked=services.revoke_agency_key(self.uow, current_principal(), request.key_id))


def registrars(uow_factory):
    return [
        lambda server: pb_grpc.add_ReferralServiceServicer_to_server(ReferralServicer(uow_factory), server),
        lambda server: pb_grpc.add_AgencyAdminServiceServicer_to_server(AgencyAdminServicer(uow_factory), server),
    ]


SERVICE_NAMES = ["mend.referrals.v1.ReferralService", "mend.referrals.v1.AgencyAdminService"]
