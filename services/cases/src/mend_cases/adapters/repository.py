from __future__ import annotations

import base64
import copy
import json
import uuid
from dataclasses import asdict
from datetime import date, datetime, timezone
from typing import Iterable

from sqlalchemy import String, and_, any_, bindparam, delete, exists, insert, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from mend_common.chain import InsertStep
from mend_common.errors import ConcurrentChange

from ..domain.case import (Allocation, Case, CaseParticipant, Clock, Closure, ConsentRecord, Eligibility, FollowUp,
                           Note, OutcomeItem, StageChange)
from .tables import (case_clocks, case_consents, case_facilitators, case_notes, case_outcome_items, case_participants,
                     case_stage_history, cases)


def _aware(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def encode_page_token(opened_at: datetime, case_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([opened_at.isoformat(), case_id]).encode()).decode()


def decode_page_token(token: str) -> tuple[datetime, str] | None:
    try:
        at, cid = json.loads(base64.urlsafe_b64decode(token.encode()))
        return _aware(datetime.fromisoformat(at)), str(uuid.UUID(cid))   # nothing else reaches SQL
    except Exception:
        return None


def _json_or_none(record) -> str | None:
    if record is None:
        return None
    return json.dumps(asdict(record), default=lambda v: v.isoformat())


CASE_COLUMNS = ("case_id", "referral_id", "county", "stage", "initiated_by", "offence_type", "offence_category",
                "offence_date", "offence_flags", "referring_agency_id", "agency_reference", "opened_at", "updated_at",
                "offence_reported_date", "seriousness")
PARTICIPANT_COLUMNS = ("participant_id", "case_id", "role", "given_name", "family_name", "date_of_birth", "age",
                       "is_youth", "vulnerabilities", "consent_to_contact", "preferred_channel", "contact",
                       "consent_status", "consent_method", "consent_at", "information_offered_at",
                       "support_referral_at", "process_stopped")
STAGE_CHANGE_COLUMNS = ("case_id", "stage", "at", "by", "reason")
CLOCK_COLUMNS = ("clock_id", "case_id", "county", "kind", "participant_id", "started_on", "basis", "due_on", "met_at",
                 "breached_at")
# A referral that already has a case gets no second one (nor its participants or history).
CASE_STEP = InsertStep(cases, CASE_COLUMNS, on_conflict="ON CONFLICT (referral_id) DO NOTHING")
PARTICIPANTS_STEP = InsertStep(case_participants, PARTICIPANT_COLUMNS)
STAGE_CHANGES_STEP = InsertStep(case_stage_history, STAGE_CHANGE_COLUMNS)
CLOCKS_STEP = InsertStep(case_clocks, CLOCK_COLUMNS)


def case_row(case: Case) -> dict:
    return {"case_id": case.case_id, "referral_id": case.referral_id, "county": case.county, "stage": case.stage,
            "initiated_by": case.initiated_by, "offence_type": case.offence_type,
            "offence_category": case.offence_category, "offence_date": case.offence_date,
            "offence_flags": json.dumps(case.offence_flags), "referring_agency_id": case.referring_agency_id,
            "agency_reference": case.agency_reference, "opened_at": case.opened_at, "updated_at": case.opened_at,
            "offence_reported_date": case.offence_reported_date, "seriousness": case.seriousness}


def participant_row(case_id: str, p: CaseParticipant) -> dict:
    return {"participant_id": p.participant_id, "case_id": case_id, "role": p.role, "given_name": p.given_name,
            "family_name": p.family_name, "date_of_birth": p.date_of_birth, "age": p.age, "is_youth": p.is_youth,
            "vulnerabilities": json.dumps(p.vulnerabilities), "consent_to_contact": p.consent_to_contact,
            "preferred_channel": p.preferred_channel, "contact": json.dumps(p.contact),
            "consent_status": p.consent_status, "consent_method": p.consent_method, "consent_at": p.consent_at,
            "information_offered_at": p.information_offered_at, "support_referral_at": p.support_referral_at,
            "process_stopped": p.process_stopped}


def stage_change_row(case_id: str, h: StageChange) -> dict:
    return {"case_id": case_id, "stage": h.stage, "at": h.at, "by": h.by, "reason": h.reason}


def clock_row(case: Case, c: Clock) -> dict:
    return {"clock_id": c.clock_id, "case_id": case.case_id, "county": case.county, "kind": c.kind,
            "participant_id": c.participant_id, "started_on": c.started_on, "basis": c.basis, "due_on": c.due_on,
            "met_at": c.met_at, "breached_at": c.breached_at}


def outcome_row(case: Case, i: OutcomeItem) -> dict:
    return {"item_id": i.item_id, "case_id": case.case_id, "county": case.county, "kind": i.kind,
            "description": i.description, "owner_participant_id": i.owner_participant_id, "due_on": i.due_on,
            "status": i.status, "recorded_by": i.recorded_by, "updated_at": i.updated_at,
            "overdue_flagged_at": i.overdue_flagged_at}


def _loaded_json(text: str | None, cls, dates: Iterable[str] = (), days: Iterable[str] = ()):
    if not text:
        return None
    data = json.loads(text)
    for name in dates:
        data[name] = _aware(datetime.fromisoformat(data[name])) if data.get(name) else None
    for name in days:
        data[name] = date.fromisoformat(data[name]) if data.get(name) else None
    return cls(**data)


class SqlCaseRepository:
    """Loads a whole case file and saves what changed in it. A case loaded for a change is
    locked (SELECT ... FOR UPDATE on PostgreSQL) and saved only if its version is unchanged."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._seen: dict[str, Case] = {}    # as loaded, to write only what changed

    # -- opening --------------------------------------------------------------------------
    def add_many(self, new_cases: list[Case]) -> set[str]:
        """Store new cases with their participants, history and clocks, a few statements for any
        number of cases. A referral that already has a case is skipped; returns the ids stored."""
        stored = set(CASE_STEP.insert_now(self.conn, [case_row(c) for c in new_cases], returning="case_id"))
        kept = [c for c in new_cases if c.case_id in stored]
        PARTICIPANTS_STEP.insert_now(self.conn, [participant_row(c.case_id, p) for c in kept for p in c.participants])
        STAGE_CHANGES_STEP.insert_now(self.conn, [stage_change_row(c.case_id, h) for c in kept for h in c.history])
        CLOCKS_STEP.insert_now(self.conn, [clock_row(c, k) for c in kept for k in c.clocks])
        return stored

    # -- reading --------------------------------------------------------------------------
    def _summary(self, row) -> Case:
        return Case(
            case_id=row.case_id, referral_id=row.referral_id, county=row.county, stage=row.stage,
            initiated_by=row.initiated_by, offence_type=row.offence_type, offence_category=row.offence_category,
            offence_date=row.offence_date, offence_flags=json.loads(row.offence_flags),
            referring_agency_id=row.referring_agency_id, agency_reference=row.agency_reference,
            opened_at=_aware(row.opened_at), offence_reported_date=row.offence_reported_date,
            eligibility=_loaded_json(row.eligibility, Eligibility, dates=("decided_at",)),
            intervention_kind=row.intervention_kind, no_agreement_reason=row.no_agreement_reason,
            follow_up=_loaded_json(row.follow_up, FollowUp, dates=("recorded_at",)),
            closure=_loaded_json(row.closure, Closure, dates=("closed_at",)),
            retention_hold=bool(row.retention_hold), version=row.version)

    def _fill(self, case: Case) -> Case:
        cid = case.case_id
        consents: dict[str, list[ConsentRecord]] = {}
        for r in self.conn.execute(select(case_consents).where(case_consents.c.case_id == cid)
                                   .order_by(case_consents.c.id)):
            consents.setdefault(r.participant_id, []).append(
                ConsentRecord(r.status, r.method, _aware(r.at), r.recorded_by, r.note))
        case.participants = [CaseParticipant(
            participant_id=p.participant_id, role=p.role, given_name=p.given_name, family_name=p.family_name,
            date_of_birth=p.date_of_birth, age=p.age, is_youth=p.is_youth,
            vulnerabilities=json.loads(p.vulnerabilities), consent_to_contact=p.consent_to_contact,
            preferred_channel=p.preferred_channel, contact=json.loads(p.contact), consent_status=p.consent_status,
            consent_method=p.consent_method, consent_at=_aware(p.consent_at),
            information_offered_at=_aware(p.information_offered_at), support_referral_at=_aware(p.support_referral_at),
            process_stopped=p.process_stopped, consent_history=consents.get(p.participant_id, []))
            for p in self.conn.execute(select(case_participants).where(case_participants.c.case_id == cid)
                                       .order_by(case_participants.c.role, case_participants.c.participant_id))]
        case.history = [StageChange(h.stage, _aware(h.at), h.by, h.reason) for h in self.conn.execute(
            select(case_stage_history).where(case_stage_history.c.case_id == cid).order_by(case_stage_history.c.id))]
        self._fill_lists([case])
        return case

    def _fill_lists(self, page: list[Case]) -> None:
        """Facilitators, outcome items and clocks of several cases, one query each."""
        by_id = {c.case_id: c for c in page}
        if not by_id:
            return
        ids = list(by_id)
        for r in self.conn.execute(select(case_facilitators).where(self._among(case_facilitators.c.case_id, ids))
                                   .order_by(case_facilitators.c.lead.desc(), case_facilitators.c.facilitator_id)):
            by_id[r.case_id].facilitators.append(Allocation(r.facilitator_id, r.lead, _aware(r.allocated_at),
                                                            r.allocated_by))
        for r in self.conn.execute(select(case_outcome_items).where(self._among(case_outcome_items.c.case_id, ids))
                                   .order_by(case_outcome_items.c.due_on, case_outcome_items.c.item_id)):
            by_id[r.case_id].outcome_items.append(OutcomeItem(
                r.item_id, r.kind, r.description, r.owner_participant_id, r.due_on, r.status, r.recorded_by,
                _aware(r.updated_at), _aware(r.overdue_flagged_at)))
        for r in self.conn.execute(select(case_clocks).where(self._among(case_clocks.c.case_id, ids))
                                   .order_by(case_clocks.c.due_on, case_clocks.c.kind, case_clocks.c.clock_id)):
            by_id[r.case_id].clocks.append(Clock(r.clock_id, r.kind, r.participant_id, r.started_on, r.basis,
                                                 r.due_on, _aware(r.met_at), _aware(r.breached_at)))

    def _among(self, column, ids: list[str]):
        """column IN ids. On PostgreSQL one array parameter (= ANY(:ids)), the same SQL text for
        any number of ids, rather than IN with a parameter an id: that one is rendered afresh on
        every call, and for a page of 51 cases cost more of our CPU than the rows it fetched."""
        if self.conn.dialect.name == "postgresql":
            return column == any_(bindparam("ids", ids, type_=ARRAY(String)))
        return column.in_(ids)

    def get(self, case_id: str) -> Case | None:
        row = self.conn.execute(select(cases).where(cases.c.case_id == case_id)).first()
        return self._fill(self._summary(row)) if row else None

    def get_for_update(self, case_id: str) -> Case | None:
        row = self.conn.execute(select(cases).where(cases.c.case_id == case_id).with_for_update()).first()
        if row is None:
            return None
        case = self._fill(self._summary(row))
        self._seen[case_id] = copy.deepcopy(case)
        return case

    def access_facts(self, case_id: str) -> tuple[str, list[str]] | None:
        """(county, allocated facilitator ids) without loading the case: enough to decide access."""
        row = self.conn.execute(select(cases.c.county).where(cases.c.case_id == case_id)).first()
        if row is None:
            return None
        facilitators = [r[0] for r in self.conn.execute(
            select(case_facilitators.c.facilitator_id).where(case_facilitators.c.case_id == case_id))]
        return row[0], facilitators

    def search(self, *, counties: list[str], stage: str | None, facilitator_id: str | None,
               clock_due_by: date | None, breached_only: bool, after: tuple[datetime, str] | None,
               limit: int) -> list[Case]:
        """Newest first, keyset-paginated on (opened_at, case_id)."""
        query = select(cases).where(cases.c.county.in_(counties))
        if stage:
            query = query.where(cases.c.stage == stage)
        if facilitator_id:
            query = query.where(exists().where(and_(case_facilitators.c.case_id == cases.c.case_id,
                                                    case_facilitators.c.facilitator_id == facilitator_id)))
        if clock_due_by or breached_only:
            clock = and_(case_clocks.c.case_id == cases.c.case_id, case_clocks.c.met_at.is_(None))
            if clock_due_by:
                clock = and_(clock, case_clocks.c.due_on <= clock_due_by)
            if breached_only:
                clock = and_(clock, case_clocks.c.breached_at.is_not(None))
            query = query.where(exists().where(clock))
        if after:
            at, cid = after
            # opened_at <= at is implied by the OR, but only as a plain range can it bound the index
            # scan, so a deep page starts where the last one ended instead of reading past every earlier row.
            query = query.where(cases.c.opened_at <= at,
                                or_(cases.c.opened_at < at, and_(cases.c.opened_at == at, cases.c.case_id < cid)))
        query = query.order_by(cases.c.opened_at.desc(), cases.c.case_id.desc()).limit(limit)
        page = [self._summary(row) for row in self.conn.execute(query)]
        self._fill_lists(page)
        return page

    # -- saving ---------------------------------------------------------------------------
    def save(self, case: Case, at: datetime) -> None:
        """Write what changed since get_for_update: the case row (version checked), new history and
        consent records, participants, allocation, outcome items and clocks."""
        before = self._seen.get(case.case_id)
        if before is None:
            raise RuntimeError("save() needs the case loaded with get_for_update() in this unit of work")
        done = self.conn.execute(update(cases).where(and_(cases.c.case_id == case.case_id,
                                                         cases.c.version == case.version)).values(
            stage=case.stage, updated_at=at, eligibility=_json_or_none(case.eligibility),
            intervention_kind=case.intervention_kind, no_agreement_reason=case.no_agreement_reason,
            follow_up=_json_or_none(case.follow_up), closure=_json_or_none(case.closure),
            closure_reason=case.closure.reason if case.closure else None,
            closed_at=case.closure.closed_at if case.closure else None,
            retention_hold=case.retention_hold, version=case.version + 1))
        if done.rowcount != 1:
            raise ConcurrentChange(f"case {case.case_id} was changed by someone else meanwhile: load it again")
        case.version += 1
        STAGE_CHANGES_STEP.insert_now(self.conn, [stage_change_row(case.case_id, h)
                                                  for h in case.history[len(before.history):]])
        old_people = {p.participant_id: p for p in before.participants}
        consent_rows = []
        for p in case.participants:
            old = old_people.get(p.participant_id)
            if old is None:
                self.conn.execute(insert(case_participants), participant_row(case.case_id, p))
            elif old != p:
                row = participant_row(case.case_id, p)
                self.conn.execute(update(case_participants).where(
                    case_participants.c.participant_id == p.participant_id).values(
                    {k: v for k, v in row.items() if k not in ("participant_id", "case_id")}))
            known = len(old.consent_history) if old else 0
            consent_rows += [{"case_id": case.case_id, "participant_id": p.participant_id, "status": r.status,
                              "method": r.method, "at": r.at, "recorded_by": r.recorded_by, "note": r.note}
                             for r in p.consent_history[known:]]
        if consent_rows:
            self.conn.execute(insert(case_consents), consent_rows)
        if before.facilitators != case.facilitators:
            self.conn.execute(delete(case_facilitators).where(case_facilitators.c.case_id == case.case_id))
            if case.facilitators:
                self.conn.execute(insert(case_facilitators), [
                    {"case_id": case.case_id, "facilitator_id": a.facilitator_id, "lead": a.lead,
                     "allocated_at": a.allocated_at, "allocated_by": a.allocated_by} for a in case.facilitators])
        # The flags are set only by the sweeps' own guarded UPDATEs, never overwritten from here.
        self._upsert(case_outcome_items, "item_id", {i.item_id: i for i in before.outcome_items},
                     case.outcome_items, lambda i: outcome_row(case, i), keep=("overdue_flagged_at",))
        self._upsert(case_clocks, "clock_id", {c.clock_id: c for c in before.clocks}, case.clocks,
                     lambda c: clock_row(case, c), keep=("breached_at",))
        self._seen[case.case_id] = copy.deepcopy(case)

    def _upsert(self, table, key: str, old: dict, items: list, to_row, keep: tuple[str, ...]) -> None:
        for item in items:
            ident = getattr(item, key)
            if ident not in old:
                self.conn.execute(insert(table), to_row(item))
            elif old[ident] != item:
                row = to_row(item)
                self.conn.execute(update(table).where(table.c[key] == ident).values(
                    {k: v for k, v in row.items() if k != key and k not in keep}))

    # -- notes (append-only) ----------------------------------------------------------------
    def add_note(self, note: Note) -> None:
        self.conn.execute(insert(case_notes), {
            "note_id": note.note_id, "case_id": note.case_id, "author": note.author, "written_at": note.written_at,
            "body": note.body, "corrects_note_id": note.corrects_note_id})

    def note_exists(self, case_id: str, note_id: str) -> bool:
        return self.conn.execute(select(case_notes.c.note_id).where(and_(
            case_notes.c.case_id == case_id, case_notes.c.note_id == note_id))).first() is not None

    def notes(self, case_id: str) -> list[Note]:
        return [Note(r.note_id, r.case_id, r.author, _aware(r.written_at), r.body, r.corrects_note_id)
                for r in self.conn.execute(select(case_notes).where(case_notes.c.case_id == case_id)
                                           .order_by(case_notes.c.written_at, case_notes.c.note_id))]

    # -- sweeps (timers) --------------------------------------------------------------------
    def flag_overdue_items(self, today: date, at: datetime, limit: int) -> list[dict]:
        """Mark pending items whose due date has passed, each once however many workers sweep at
        the same moment: the UPDATE re-checks the flag, so only one sweep gets each row back."""
        candidates = [r[0] for r in self.conn.execute(
            select(case_outcome_items.c.item_id).where(and_(
                case_outcome_items.c.status == "pending", case_outcome_items.c.overdue_flagged_at.is_(None),
                case_outcome_items.c.due_on < today)).order_by(case_outcome_items.c.due_on).limit(limit))]
        if not candidates:
            return []
        flagged = self.conn.execute(update(case_outcome_items).where(and_(
            case_outcome_items.c.item_id.in_(candidates), case_outcome_items.c.overdue_flagged_at.is_(None),
            case_outcome_items.c.status == "pending")).values(overdue_flagged_at=at).returning(
            case_outcome_items.c.item_id, case_outcome_items.c.case_id, case_outcome_items.c.county,
            case_outcome_items.c.kind, case_outcome_items.c.owner_participant_id, case_outcome_items.c.due_on))
        return [dict(r._mapping) for r in flagged]

    def flag_breached_clocks(self, today: date, at: datetime, limit: int) -> list[dict]:
        """Mark unmet clocks whose last day has passed as breached, each once (see above)."""
        candidates = [r[0] for r in self.conn.execute(
            select(case_clocks.c.clock_id).where(and_(
                case_clocks.c.met_at.is_(None), case_clocks.c.breached_at.is_(None),
                case_clocks.c.due_on < today)).order_by(case_clocks.c.due_on).limit(limit))]
        return self._flag_clocks(candidates, at)

    def flag_late_clocks(self, clock_ids: list[str], at: datetime) -> list[dict]:
        """Clocks met after their last day: a breach too, flagged when the late action is recorded."""
        return self._flag_clocks(clock_ids, at)

    def _flag_clocks(self, clock_ids: list[str], at: datetime) -> list[dict]:
        if not clock_ids:
            return []
        flagged = self.conn.execute(update(case_clocks).where(and_(
            case_clocks.c.clock_id.in_(clock_ids), case_clocks.c.breached_at.is_(None))).values(
            breached_at=at).returning(
            case_clocks.c.clock_id, case_clocks.c.case_id, case_clocks.c.county, case_clocks.c.kind,
            case_clocks.c.participant_id, case_clocks.c.due_on, case_clocks.c.started_on))
        return [dict(r._mapping) for r in flagged]
