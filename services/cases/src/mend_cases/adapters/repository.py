from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection

from mend_common.chain import InsertStep

from ..domain.case import Case, CaseParticipant, StageChange
from .tables import case_participants, case_stage_history, cases


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def encode_page_token(opened_at: datetime, case_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([opened_at.isoformat(), case_id]).encode()).decode()


def decode_page_token(token: str) -> tuple[datetime, str] | None:
    try:
        at, cid = json.loads(base64.urlsafe_b64decode(token.encode()))
        return _aware(datetime.fromisoformat(at)), str(cid)
    except Exception:
        return None


CASE_COLUMNS = ("case_id", "referral_id", "county", "stage", "initiated_by", "offence_type", "offence_category",
                "offence_date", "offence_flags", "referring_agency_id", "agency_reference", "opened_at", "updated_at")
PARTICIPANT_COLUMNS = ("participant_id", "case_id", "role", "given_name", "family_name", "date_of_birth", "age",
                       "is_youth", "vulnerabilities", "consent_to_contact", "preferred_channel", "contact")
STAGE_CHANGE_COLUMNS = ("case_id", "stage", "at", "by", "reason")
# A referral that already has a case gets no second one (nor its participants or history).
CASE_STEP = InsertStep(cases, CASE_COLUMNS, on_conflict="ON CONFLICT (referral_id) DO NOTHING")
PARTICIPANTS_STEP = InsertStep(case_participants, PARTICIPANT_COLUMNS)
STAGE_CHANGES_STEP = InsertStep(case_stage_history, STAGE_CHANGE_COLUMNS)


def case_row(case: Case) -> dict:
    return {"case_id": case.case_id, "referral_id": case.referral_id, "county": case.county, "stage": case.stage,
            "initiated_by": case.initiated_by, "offence_type": case.offence_type,
            "offence_category": case.offence_category, "offence_date": case.offence_date,
            "offence_flags": json.dumps(case.offence_flags), "referring_agency_id": case.referring_agency_id,
            "agency_reference": case.agency_reference, "opened_at": case.opened_at, "updated_at": case.opened_at}


def participant_rows(case: Case) -> list[dict]:
    return [{"participant_id": p.participant_id, "case_id": case.case_id, "role": p.role, "given_name": p.given_name,
             "family_name": p.family_name, "date_of_birth": p.date_of_birth, "age": p.age, "is_youth": p.is_youth,
             "vulnerabilities": json.dumps(p.vulnerabilities), "consent_to_contact": p.consent_to_contact,
             "preferred_channel": p.preferred_channel, "contact": json.dumps(p.contact)} for p in case.participants]


def stage_change_rows(case: Case) -> list[dict]:
    return [{"case_id": case.case_id, "stage": h.stage, "at": h.at, "by": h.by, "reason": h.reason}
            for h in case.history]


class SqlCaseRepository:
    def __init__(self, conn: Connection):
        self.conn = conn

    def _case(self, row, *, full: bool) -> Case:
        case = Case(
            case_id=row.case_id, referral_id=row.referral_id, county=row.county, stage=row.stage,
            initiated_by=row.initiated_by, offence_type=row.offence_type, offence_category=row.offence_category,
            offence_date=row.offence_date, offence_flags=json.loads(row.offence_flags),
            referring_agency_id=row.referring_agency_id, agency_reference=row.agency_reference,
            opened_at=_aware(row.opened_at))
        if full:
            case.participants = [CaseParticipant(
                participant_id=p.participant_id, role=p.role, given_name=p.given_name, family_name=p.family_name,
                date_of_birth=p.date_of_birth, age=p.age, is_youth=p.is_youth,
                vulnerabilities=json.loads(p.vulnerabilities), consent_to_contact=p.consent_to_contact,
                preferred_channel=p.preferred_channel, contact=json.loads(p.contact))
                for p in self.conn.execute(select(case_participants).where(case_participants.c.case_id == row.case_id)
                                           .order_by(case_participants.c.role, case_participants.c.participant_id))]
            case.history = [StageChange(h.stage, _aware(h.at), h.by, h.reason) for h in self.conn.execute(
                select(case_stage_history).where(case_stage_history.c.case_id == row.case_id)
                .order_by(case_stage_history.c.id))]
        return case

    def add_many(self, new_cases: list[Case]) -> set[str]:
        """Store new cases with their participants and history, a few statements for any number
        of cases. A referral that already has a case is skipped; returns the ids of those stored."""
        stored = set(CASE_STEP.insert_now(self.conn, [case_row(c) for c in new_cases], returning="case_id"))
        kept = [c for c in new_cases if c.case_id in stored]
        PARTICIPANTS_STEP.insert_now(self.conn, [row for c in kept for row in participant_rows(c)])
        STAGE_CHANGES_STEP.insert_now(self.conn, [row for c in kept for row in stage_change_rows(c)])
        return stored

    def get(self, case_id: str) -> Case | None:
        row = self.conn.execute(select(cases).where(cases.c.case_id == case_id)).first()
        return self._case(row, full=True) if row else None

    def list(self, *, counties: list[str], stage: str | None, after: tuple[datetime, str] | None, limit: int) -> list[Case]:
        query = select(cases).where(cases.c.county.in_(counties))
        if stage:
            query = query.where(cases.c.stage == stage)
        if after:
            at, cid = after
            query = query.where(or_(cases.c.opened_at < at, and_(cases.c.opened_at == at, cases.c.case_id < cid)))
        query = query.order_by(cases.c.opened_at.desc(), cases.c.case_id.desc()).limit(limit)
        return [self._case(row, full=False) for row in self.conn.execute(query)]
