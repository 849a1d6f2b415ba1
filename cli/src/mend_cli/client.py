"""Thin gRPC clients for the Mend services, used by the CLI, the dev stack, tests and benchmarks.
Every call has a timeout."""
from __future__ import annotations

import uuid
from typing import Any

import grpc

from mend.cases.v1 import cases_pb2, cases_pb2_grpc
from mend.referrals.v1 import referrals_pb2, referrals_pb2_grpc
from mend_common.proto_convert import plain_to_enum, plain_to_message

DEFAULT_TIMEOUT = 10.0


def _metadata(api_key: str | None, token: str | None, correlation_id: str | None = None):
    md = []
    if api_key:
        md.append(("x-api-key", api_key))
    if token:
        md.append(("authorization", f"Bearer {token}"))
    if correlation_id:
        md.append(("x-correlation-id", correlation_id))
    return tuple(md)


class ReferralsClient:
    def __init__(self, target: str, *, api_key: str | None = None, token: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, channel: grpc.Channel | None = None):
        self.channel = channel or grpc.insecure_channel(target)
        self.stub = referrals_pb2_grpc.ReferralServiceStub(self.channel)
        self.admin = referrals_pb2_grpc.AgencyAdminServiceStub(self.channel)
        self.md = _metadata(api_key, token)
        self.timeout = timeout

    def submit(self, draft: dict[str, Any], request_id: str | None = None) -> referrals_pb2.SubmitReferralResponse:
        request = referrals_pb2.SubmitReferralRequest(request_id=request_id or f"cli-{uuid.uuid4().hex}")
        plain_to_message(draft, request.referral)
        return self.stub.SubmitReferral(request, metadata=self.md, timeout=self.timeout)

    def get(self, referral_id: str) -> referrals_pb2.Referral:
        return self.stub.GetReferral(referrals_pb2.GetReferralRequest(referral_id=referral_id),
                                     metadata=self.md, timeout=self.timeout)

    def list(self, page_size: int = 50, page_token: str = "") -> referrals_pb2.ListReferralsResponse:
        return self.stub.ListReferrals(referrals_pb2.ListReferralsRequest(page_size=page_size, page_token=page_token),
                                       metadata=self.md, timeout=self.timeout)

    def create_agency(self, name: str, county: str, kind: str) -> referrals_pb2.Agency:
        kind_enum = referrals_pb2.DESCRIPTOR.enum_types_by_name["AgencyKind"]
        return self.admin.CreateAgency(referrals_pb2.CreateAgencyRequest(
            name=name, county=county, kind=plain_to_enum(kind_enum, kind)), metadata=self.md, timeout=self.timeout)

    def list_agencies(self, county: str = "") -> referrals_pb2.ListAgenciesResponse:
        return self.admin.ListAgencies(referrals_pb2.ListAgenciesRequest(county=county), metadata=self.md,
                                       timeout=self.timeout)

    def issue_key(self, agency_id: str, label: str = "") -> referrals_pb2.IssueApiKeyResponse:
        return self.admin.IssueApiKey(referrals_pb2.IssueApiKeyRequest(agency_id=agency_id, label=label),
                                      metadata=self.md, timeout=self.timeout)

    def revoke_key(self, key_id: str) -> bool:
        return self.admin.RevokeApiKey(referrals_pb2.RevokeApiKeyRequest(key_id=key_id), metadata=self.md,
                                       timeout=self.timeout).revoked


class CasesClient:
    def __init__(self, target: str, *, token: str | None = None, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT):
        self.channel = grpc.insecure_channel(target)
        self.stub = cases_pb2_grpc.CaseServiceStub(self.channel)
        self.md = _metadata(api_key, token)
        self.timeout = timeout

    def get(self, case_id: str) -> cases_pb2.Case:
        return self.stub.GetCase(cases_pb2.GetCaseRequest(case_id=case_id), metadata=self.md, timeout=self.timeout)

    def list(self, county: str = "", stage: str = "", page_size: int = 50, page_token: str = "") -> cases_pb2.ListCasesResponse:
        stage_enum = cases_pb2.DESCRIPTOR.enum_types_by_name["Stage"]
        return self.stub.ListCases(cases_pb2.ListCasesRequest(
            county=county, stage=plain_to_enum(stage_enum, stage), page_size=page_size, page_token=page_token),
            metadata=self.md, timeout=self.timeout)
