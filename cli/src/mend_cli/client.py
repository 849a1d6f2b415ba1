"""Thin gRPC clients for the Mend services, used by the CLI, the dev stack, tests and benchmarks.
Every call has a timeout."""
from __future__ import annotations

import uuid
from typing import Any

import grpc

from mend.cases.v1 import cases_pb2, cases_pb2_grpc
from mend.referrals.v1 import referrals_pb2, referrals_pb2_grpc
from mend.risk.v1 import risk_pb2, risk_pb2_grpc
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


STAGE_ENUM = cases_pb2.DESCRIPTOR.enum_types_by_name["Stage"]


def stage_number(stage: str) -> int:
    """The Stage enum number of a plain stage name ("consent" -> STAGE_CONSENT); 0 if unknown."""
    return plain_to_enum(STAGE_ENUM, stage)


class CasesClient:
    def __init__(self, target: str, *, token: str | None = None, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, channel: grpc.Channel | None = None):
        self.channel = channel or grpc.insecure_channel(target)
        self.stub = cases_pb2_grpc.CaseServiceStub(self.channel)
        self.md = _metadata(api_key, token)
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def _call(self, method: str, request):
        return getattr(self.stub, method)(request, metadata=self.md, timeout=self.timeout)

    def get(self, case_id: str) -> cases_pb2.Case:
        return self._call("GetCase", cases_pb2.GetCaseRequest(case_id=case_id))

    def list(self, county: str = "", stage: str = "", page_size: int = 50, page_token: str = "", *,
             facilitator_id: str = "", clock_due_by: str = "", breached_only: bool = False) -> cases_pb2.ListCasesResponse:
        return self._call("ListCases", cases_pb2.ListCasesRequest(
            county=county, stage=stage_number(stage), page_size=page_size, page_token=page_token,
            facilitator_id=facilitator_id, clock_due_by=clock_due_by, breached_only=breached_only))

    def decide_eligibility(self, case_id: str, accepted: bool, facts_acknowledged: bool = False,
                           reason: str = "") -> cases_pb2.Case:
        return self._call("DecideEligibility", cases_pb2.DecideEligibilityRequest(
            case_id=case_id, accepted=accepted, facts_acknowledged=facts_acknowledged, reason=reason))

    def move_stage(self, case_id: str, to_stage: str, reason: str = "") -> cases_pb2.Case:
        return self._call("MoveStage", cases_pb2.MoveStageRequest(case_id=case_id, to_stage=stage_number(to_stage),
                                                                  reason=reason))

    def choose_intervention(self, case_id: str, kind: str) -> cases_pb2.Case:
        return self._call("ChooseIntervention", cases_pb2.ChooseInterventionRequest(case_id=case_id, kind=kind))

    def record_consent(self, case_id: str, participant_id: str, status: str, method: str = "", at: str = "",
                       note: str = "") -> cases_pb2.Case:
        return self._call("RecordConsent", cases_pb2.RecordConsentRequest(
            case_id=case_id, participant_id=participant_id, status=status, method=method, at=at, note=note))

    def record_information_offered(self, case_id: str, participant_id: str) -> cases_pb2.Case:
        return self._call("RecordInformationOffered",
                          cases_pb2.ParticipantActionRequest(case_id=case_id, participant_id=participant_id))

    def record_support_referral(self, case_id: str, participant_id: str) -> cases_pb2.Case:
        return self._call("RecordSupportReferral",
                          cases_pb2.ParticipantActionRequest(case_id=case_id, participant_id=participant_id))

    def add_note(self, case_id: str, body: str, corrects_note_id: str = "") -> cases_pb2.Note:
        return self._call("AddNote", cases_pb2.AddNoteRequest(case_id=case_id, body=body,
                                                              corrects_note_id=corrects_note_id))

    def list_notes(self, case_id: str) -> cases_pb2.ListNotesResponse:
        return self._call("ListNotes", cases_pb2.ListNotesRequest(case_id=case_id))

    def allocate_facilitators(self, case_id: str, facilitator_ids: list[str], reason: str = "") -> cases_pb2.Case:
        return self._call("AllocateFacilitators", cases_pb2.AllocateFacilitatorsRequest(
            case_id=case_id, facilitator_ids=facilitator_ids, reason=reason))

    def add_outcome_item(self, case_id: str, kind: str, description: str, owner_participant_id: str,
                         due_on: str) -> cases_pb2.Case:
        return self._call("AddOutcomeItem", cases_pb2.AddOutcomeItemRequest(
            case_id=case_id, kind=kind, description=description, owner_participant_id=owner_participant_id,
            due_on=due_on))

    def update_outcome_item(self, case_id: str, item_id: str, status: str) -> cases_pb2.Case:
        return self._call("UpdateOutcomeItem", cases_pb2.UpdateOutcomeItemRequest(case_id=case_id, item_id=item_id,
                                                                                  status=status))

    def record_no_agreement(self, case_id: str, reason: str) -> cases_pb2.Case:
        return self._call("RecordNoAgreement", cases_pb2.RecordNoAgreementRequest(case_id=case_id, reason=reason))

    def record_follow_up(self, case_id: str, satisfaction: str, support_given: str = "",
                         signposted_to: list[str] | None = None) -> cases_pb2.Case:
        return self._call("RecordFollowUp", cases_pb2.RecordFollowUpRequest(
            case_id=case_id, satisfaction=satisfaction, support_given=support_given,
            signposted_to=signposted_to or []))

    def close_case(self, case_id: str, reason: str, note: str = "") -> cases_pb2.Case:
        return self._call("CloseCase", cases_pb2.CloseCaseRequest(case_id=case_id, reason=reason, note=note))


class RiskClient:
    def __init__(self, target: str, *, token: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 channel: grpc.Channel | None = None):
        self.channel = channel or grpc.insecure_channel(target)
        self.stub = risk_pb2_grpc.RiskServiceStub(self.channel)
        self.md = _metadata(None, token)
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def _call(self, method: str, request):
        return getattr(self.stub, method)(request, metadata=self.md, timeout=self.timeout)

    def assess(self, case_id: str, participant_id: str, factors: list[dict]) -> risk_pb2.Assessment:
        """factors: dicts with kind, severity, source and optional notes."""
        return self._call("RecordAssessment", risk_pb2.RecordAssessmentRequest(
            case_id=case_id, participant_id=participant_id, factors=[risk_pb2.Factor(**f) for f in factors]))

    def approve(self, assessment_id: str, expected_version: int = 0) -> risk_pb2.Assessment:
        return self._call("ApproveAssessment", risk_pb2.ReviewAssessmentRequest(
            assessment_id=assessment_id, expected_version=expected_version))

    def reject(self, assessment_id: str, reason: str, expected_version: int = 0) -> risk_pb2.Assessment:
        return self._call("RejectAssessment", risk_pb2.ReviewAssessmentRequest(
            assessment_id=assessment_id, reason=reason, expected_version=expected_version))

    def new_information(self, case_id: str, summary: str, participant_id: str = "") -> list[str]:
        return list(self._call("RecordNewInformation", risk_pb2.RecordNewInformationRequest(
            case_id=case_id, participant_id=participant_id, summary=summary)).expired_assessment_ids)

    def get(self, assessment_id: str) -> risk_pb2.Assessment:
        return self._call("GetAssessment", risk_pb2.GetAssessmentRequest(assessment_id=assessment_id))

    def list(self, case_id: str, current_only: bool = False) -> list[risk_pb2.Assessment]:
        return list(self._call("ListAssessments", risk_pb2.ListAssessmentsRequest(
            case_id=case_id, current_only=current_only)).assessments)

    def check_meeting_safety(self, case_id: str, participant_ids: list[str], meeting_kind: str,
                             plan_measures: list[str] = ()) -> risk_pb2.SafetyDecision:
        return self._call("CheckMeetingSafety", risk_pb2.CheckMeetingSafetyRequest(
            case_id=case_id, participant_ids=participant_ids, meeting_kind=meeting_kind,
            plan_measures=list(plan_measures)))

    def rules(self) -> risk_pb2.Rules:
        return self._call("GetRules", risk_pb2.GetRulesRequest())
