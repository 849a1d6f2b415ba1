"""Driving a case through the running region over gRPC, shared by the live tests."""
from __future__ import annotations

import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from mend.cases.v1 import cases_pb2 as pb
from mend.cases.v1 import cases_pb2_grpc
from mend_cli.pytest_stack import referral_draft
from tests.support.waiting import wait_for


class Cases:
    """The CaseService stub with a staff token."""

    def __init__(self, tenant, *roles, subject="coord-1"):
        self.channel = grpc.insecure_channel(tenant.stack.grpc_target("cases"))
        self.stub = cases_pb2_grpc.CaseServiceStub(self.channel)
        self.md = (("authorization", f"Bearer {tenant.staff_token(*(roles or ('coordinator',)), subject=subject)}"),)

    def __getattr__(self, method):
        call = getattr(self.stub, method)
        request_type = getattr(pb, f"{method}Request", None) or {
            "RecordInformationOffered": pb.ParticipantActionRequest,
            "RecordSupportReferral": pb.ParticipantActionRequest}.get(method)
        if request_type is None:
            request_type = {"GetCase": pb.GetCaseRequest}[method]
        return lambda **fields: call(request_type(**fields), metadata=self.md, timeout=15)


def refused(call) -> tuple[grpc.StatusCode, str, list]:
    """The status of a refused call, with its PreconditionFailure or BadRequest entries."""
    with pytest.raises(grpc.RpcError) as err:
        call()
    status = rpc_status.from_call(err.value)
    details = []
    for any_detail in (status.details if status else []):
        for kind in (error_details_pb2.PreconditionFailure, error_details_pb2.BadRequest):
            if any_detail.Is(kind.DESCRIPTOR):
                message = kind()
                any_detail.Unpack(message)
                details += [(v.type, v.description) for v in getattr(message, "violations", [])]
                details += [(v.field, v.description) for v in getattr(message, "field_violations", [])]
    return err.value.code(), err.value.details(), details


def opened_case(tenant, **overrides) -> tuple[str, str]:
    agency = tenant.agency_client()
    submitted = agency.submit(referral_draft(tenant.county, **overrides), request_id=f"req-{uuid.uuid4().hex}")
    case_id = wait_for(lambda: agency.get(submitted.referral_id).case_id)
    return submitted.referral_id, case_id


def parties(case: pb.Case) -> dict[str, str]:
    return {p.role: p.participant_id for p in case.participants}


def to_risk_and_safety(cases: Cases, case_id: str) -> pb.Case:
    case = cases.DecideEligibility(case_id=case_id, accepted=True, facts_acknowledged=True, reason="suitable")
    people = parties(case)
    for role in ("victim", "responsible_person"):
        cases.RecordInformationOffered(case_id=case_id, participant_id=people[role])
    cases.MoveStage(case_id=case_id, to_stage=pb.STAGE_CONSENT, reason="information given")
    for role in ("victim", "responsible_person"):
        cases.RecordConsent(case_id=case_id, participant_id=people[role], status="given", method="written")
    return cases.MoveStage(case_id=case_id, to_stage=pb.STAGE_RISK_AND_SAFETY)


def assess_everyone(tenant, case: pb.Case, factors=()) -> list:
    """A coordinator assesses the victim and the responsible person; a manager approves any
    assessment that needs it."""
    assessor, manager = tenant.risk_client("coordinator", subject="coord-1"), tenant.risk_client("manager",
                                                                                                  subject="mgr-1")
    done = []
    for role in ("victim", "responsible_person"):
        a = assessor.assess(case.case_id, parties(case)[role], list(factors))
        if a.status == "awaiting_approval":
            a = manager.approve(a.assessment_id)
        done.append(a)
    return done
