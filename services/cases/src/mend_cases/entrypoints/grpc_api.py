"""gRPC entrypoint of the cases service: translates messages and calls the service layer."""
from __future__ import annotations


from mend.cases.v1 import cases_pb2 as pb
from mend.cases.v1 import cases_pb2_grpc as pb_grpc
from mend_common.grpc_server import current_principal
from mend_common.proto_convert import enum_to_plain, plain_to_enum, timestamp

from ..domain.clocks import has_enhanced_rights
from ..domain.lifecycle import next_stages
from ..service_layer import services

STAGE_ENUM = pb.DESCRIPTOR.enum_types_by_name["Stage"]
SERVICE_NAMES = ["mend.cases.v1.CaseService"]


def _stage(stage: str):
    return plain_to_enum(STAGE_ENUM, stage)


def participant_to_pb(p, case=None) -> pb.Participant:
    return pb.Participant(
        participant_id=p.participant_id, role=p.role, given_name=p.given_name, family_name=p.family_name,
        date_of_birth=p.date_of_birth or "", age=p.age or 0, is_youth=p.is_youth,
        vulnerabilities=p.vulnerabilities, consent_to_contact=p.consent_to_contact,
        preferred_channel=p.preferred_channel, consent_status=p.consent_status, consent_method=p.consent_method,
        consent_at=timestamp(p.consent_at), process_stopped=p.process_stopped, enhanced_rights=has_enhanced_rights(case, p) if case else p.has_enhanced_rights,
        information_offered_at=timestamp(p.information_offered_at), support_referral_at=timestamp(p.support_referral_at),
        consent_history=[pb.ConsentEntry(status=r.status, method=r.method, at=timestamp(r.at), recorded_by=r.recorded_by,
                                         note=r.note) for r in p.consent_history])


def case_to_pb(case) -> pb.Case:
    e, f, c = case.eligibility, case.follow_up, case.closure
    return pb.Case(
        case_id=case.case_id, referral_id=case.referral_id, county=case.county, stage=_stage(case.stage),
        initiated_by=case.initiated_by, offence_type=case.offence_type, offence_category=case.offence_category,
        offence_date=case.offence_date, offence_flags=case.offence_flags,
        referring_agency_id=case.referring_agency_id, agency_reference=case.agency_reference,
        opened_at=timestamp(case.opened_at), offence_reported_date=case.offence_reported_date or "",
        participants=[participant_to_pb(p, case) for p in case.participants],
        history=[pb.StageChange(stage=_stage(h.stage), at=timestamp(h.at), by=h.by, reason=h.reason) for h in case.history],
        seriousness=case.seriousness,
        eligibility=pb.Eligibility(decision=e.decision, facts_acknowledged=e.facts_acknowledged, reason=e.reason,
                                   decided_by=e.decided_by, decided_at=timestamp(e.decided_at)) if e else None,
        intervention_kind=case.intervention_kind,
        facilitators=[pb.Allocation(facilitator_id=a.facilitator_id, lead=a.lead, allocated_at=timestamp(a.allocated_at),
                                    allocated_by=a.allocated_by) for a in case.facilitators],
        outcome_items=[pb.OutcomeItem(item_id=i.item_id, kind=i.kind, description=i.description,
                                      owner_participant_id=i.owner_participant_id, due_on=i.due_on.isoformat(),
                                      status=i.status, overdue=i.overdue_flagged_at is not None)
                       for i in case.outcome_items],
        no_agreement_reason=case.no_agreement_reason,
        follow_up=pb.FollowUp(support_given=f.support_given, signposted_to=f.signposted_to,
                              satisfaction=f.satisfaction, recorded_by=f.recorded_by,
                              recorded_at=timestamp(f.recorded_at)) if f else None,
        closure=pb.Closure(reason=c.reason, note=c.note, closed_by=c.closed_by, closed_at=timestamp(c.closed_at))
        if c else None,
        retention_hold=case.retention_hold,
        clocks=[pb.VictimsCodeClock(kind=k.kind, participant_id=k.participant_id, started_on=k.started_on.isoformat(),
                                    basis=k.basis, due_on=k.due_on.isoformat(), met_at=timestamp(k.met_at),
                                    breached=k.breached_at is not None) for k in case.clocks],
        next_stages=[_stage(s) for s in next_stages(case.stage)])


def note_to_pb(note) -> pb.Note:
    return pb.Note(note_id=note.note_id, case_id=note.case_id, author=note.author, written_at=timestamp(note.written_at),
                   body=note.body, corrects_note_id=note.corrects_note_id or "")


def _plain_stage(value) -> str | None:
    stage = enum_to_plain(STAGE_ENUM, value)
    return stage if isinstance(stage, str) else (str(stage) if stage is not None else None)


class CaseServicer(pb_grpc.CaseServiceServicer):
    def __init__(self, uow_factory, risk, register, rules):
        self.uow, self.risk, self.register, self.rules = uow_factory, risk, register, rules

    def GetCase(self, request, context):
        return case_to_pb(services.get_case(self.uow, current_principal(), request.case_id))

    def ListCases(self, request, context):
        items, token = services.list_cases(
            self.uow, current_principal(), county=request.county, stage=_plain_stage(request.stage),
            page_size=request.page_size, page_token=request.page_token, facilitator_id=request.facilitator_id,
            clock_due_by=request.clock_due_by, breached_only=request.breached_only)
        return pb.ListCasesResponse(cases=[case_to_pb(c) for c in items], next_page_token=token)

    def DecideEligibility(self, request, context):
        return case_to_pb(services.decide_eligibility(
            self.uow, current_principal(), request.case_id, accepted=request.accepted,
            facts_acknowledged=request.facts_acknowledged, reason=request.reason))

    def MoveStage(self, request, context):
        return case_to_pb(services.move_stage(
            self.uow, self.risk, current_principal(), request.case_id, to_stage=_plain_stage(request.to_stage) or "",
            reason=request.reason))

    def ChooseIntervention(self, request, context):
        return case_to_pb(services.choose_intervention(self.uow, current_principal(), request.case_id,
                                                       kind=request.kind))

    def AddParticipant(self, request, context):
        c = request.contact
        data = {"role": request.role, "given_name": request.given_name, "family_name": request.family_name,
                "date_of_birth": request.date_of_birth, "age": request.age if request.age else None,
                "vulnerabilities": list(request.vulnerabilities), "consent_to_contact": request.consent_to_contact,
                "contact": {"email": c.email, "phone": c.phone, "address": c.address, "postcode": c.postcode,
                            "preferred_channel": c.preferred_channel}}
        return participant_to_pb(services.add_participant(self.uow, current_principal(), request.case_id, data,
                                                          self.rules))

    def RecordConsent(self, request, context):
        return case_to_pb(services.record_consent(
            self.uow, current_principal(), request.case_id, participant_id=request.participant_id,
            status=request.status, method=request.method, given_at=request.at, note=request.note))

    def RecordInformationOffered(self, request, context):
        return case_to_pb(services.record_information_offered(self.uow, current_principal(), request.case_id,
                                                              participant_id=request.participant_id))

    def RecordSupportReferral(self, request, context):
        return case_to_pb(services.record_support_referral(self.uow, current_principal(), request.case_id,
                                                           participant_id=request.participant_id))

    def AddNote(self, request, context):
        return note_to_pb(services.add_note(self.uow, current_principal(), request.case_id, body=request.body,
                                            corrects_note_id=request.corrects_note_id))

    def ListNotes(self, request, context):
        return pb.ListNotesResponse(notes=[note_to_pb(n) for n in
                                           services.list_notes(self.uow, current_principal(), request.case_id)])

    def AllocateFacilitators(self, request, context):
        return case_to_pb(services.allocate_facilitators(
            self.uow, self.register, current_principal(), request.case_id,
            facilitator_ids=list(request.facilitator_ids), reason=request.reason))

    def AddOutcomeItem(self, request, context):
        return case_to_pb(services.add_outcome_item(
            self.uow, current_principal(), request.case_id, kind=request.kind, description=request.description,
            owner_participant_id=request.owner_participant_id, due_on=request.due_on))

    def UpdateOutcomeItem(self, request, context):
        return case_to_pb(services.update_outcome_item(self.uow, current_principal(), request.case_id,
                                                       item_id=request.item_id, status=request.status))

    def RecordNoAgreement(self, request, context):
        return case_to_pb(services.record_no_agreement(self.uow, current_principal(), request.case_id,
                                                       reason=request.reason))

    def RecordFollowUp(self, request, context):
        return case_to_pb(services.record_follow_up(
            self.uow, current_principal(), request.case_id, support_given=request.support_given,
            signposted_to=list(request.signposted_to), satisfaction=request.satisfaction))

    def CloseCase(self, request, context):
        return case_to_pb(services.close_case(self.uow, current_principal(), request.case_id, reason=request.reason,
                                              note=request.note))

    def SetRetentionHold(self, request, context):
        return case_to_pb(services.set_retention_hold(self.uow, current_principal(), request.case_id,
                                                      hold=request.hold, reason=request.reason))


def registrars(uow_factory, risk, register, rules):
    servicer = CaseServicer(uow_factory, risk, register, rules)
    return [lambda server: pb_grpc.add_CaseServiceServicer_to_server(servicer, server)]
