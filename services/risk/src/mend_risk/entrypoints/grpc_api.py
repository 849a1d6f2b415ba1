"""gRPC entrypoint of the risk service: translates messages and calls the service layer."""
from __future__ import annotations

import json


from mend.risk.v1 import risk_pb2 as pb
from mend.risk.v1 import risk_pb2_grpc as pb_grpc
from mend_common.grpc_server import current_principal
from mend_common.proto_convert import timestamp

from ..domain.rules import current_rules
from ..service_layer import services

SERVICE_NAMES = ["mend.risk.v1.RiskService"]


def assessment_to_pb(a, now=None) -> pb.Assessment:
    c = a.conclusion
    return pb.Assessment(
        assessment_id=a.assessment_id, case_id=a.case_id, county=a.county, participant_id=a.participant_id,
        stage=a.stage, assessor=a.assessor, assessed_at=timestamp(a.assessed_at),
        factors=[pb.Factor(kind=f.kind, severity=f.severity, source=f.source, notes=f.notes) for f in a.factors],
        level=c.level, measures=list(c.measures), decision=c.decision, needs_approval=c.needs_approval,
        reasons=[pb.Reason(conclusion=r.conclusion, rule_id=r.rule_id, text=r.text) for r in c.reasons],
        rule_version=c.rule_version, status=a.status, expires_at=timestamp(a.expires_at), approved_by=a.approved_by or "",
        approved_at=timestamp(a.approved_at), rejected_by=a.rejected_by or "", rejection_reason=a.rejection_reason or "",
        expired_at=timestamp(a.expired_at), expiry_reason=a.expiry_reason or "", supersedes=a.supersedes or "",
        version=a.version, current=a.is_current(now or services._now()))


def _factors(request) -> list[dict]:
    return [{"kind": f.kind, "severity": f.severity, "source": f.source, "notes": f.notes} for f in request.factors]


class RiskServicer(pb_grpc.RiskServiceServicer):
    def __init__(self, uow_factory, cases, settings):
        self.uow, self.cases, self.settings = uow_factory, cases, settings

    def RecordAssessment(self, request, context):
        return assessment_to_pb(services.record_assessment(
            self.uow, self.cases, current_principal(), case_id=request.case_id,
            participant_id=request.participant_id, factors=_factors(request), valid_days=self.settings.valid_days))

    def ApproveAssessment(self, request, context):
        return assessment_to_pb(services.review_assessment(
            self.uow, self.cases, current_principal(), assessment_id=request.assessment_id, approve=True,
            reason=request.reason, expected_version=request.expected_version))

    def RejectAssessment(self, request, context):
        return assessment_to_pb(services.review_assessment(
            self.uow, self.cases, current_principal(), assessment_id=request.assessment_id, approve=False,
            reason=request.reason, expected_version=request.expected_version))

    def RecordNewInformation(self, request, context):
        return pb.RecordNewInformationResponse(expired_assessment_ids=services.record_new_information(
            self.uow, self.cases, current_principal(), case_id=request.case_id,
            participant_id=request.participant_id, summary=request.summary))

    def GetAssessment(self, request, context):
        return assessment_to_pb(services.get_assessment(self.uow, self.cases, current_principal(),
                                                        request.assessment_id))

    def ListAssessments(self, request, context):
        found = services.list_assessments(self.uow, self.cases, current_principal(), request.case_id,
                                          current_only=request.current_only)
        return pb.ListAssessmentsResponse(assessments=[assessment_to_pb(a) for a in found])

    def CheckMeetingSafety(self, request, context):
        decision = services.check_meeting_safety(
            self.uow, self.cases, current_principal(), case_id=request.case_id,
            participant_ids=list(request.participant_ids), meeting_kind=request.meeting_kind,
            plan_measures=list(request.plan_measures))
        return pb.SafetyDecision(allowed=decision.allowed, reasons=list(decision.reasons))

    def GetRules(self, request, context):
        rules = services.read_rules(self.uow, current_principal(), current_rules())
        return pb.Rules(version=rules.version, rules_json=json.dumps(rules.to_dict(), indent=2, sort_keys=True))


def registrars(uow_factory, cases, settings):
    servicer = RiskServicer(uow_factory, cases, settings)
    return [lambda server: pb_grpc.add_RiskServiceServicer_to_server(servicer, server)]
