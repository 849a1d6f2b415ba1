"""Assessments in SQL. Optimistic versions on top of row locks: a writer that read an older
version gets ABORTED rather than overwriting a colleague's approval."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection

from mend_common.errors import ConcurrentChange

from ..domain.assessment import Assessment
from ..domain.rules import Conclusion, Factor, Reason
from .tables import assessments

IN_FORCE = ("approved", "awaiting_approval")


def _aware(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def to_row(a: Assessment) -> dict:
    c = a.conclusion
    return {
        "assessment_id": a.assessment_id, "case_id": a.case_id, "county": a.county,
        "participant_id": a.participant_id, "stage": a.stage, "assessor": a.assessor, "assessed_at": a.assessed_at,
        "factors": json.dumps([{"kind": f.kind, "severity": f.severity, "source": f.source, "notes": f.notes}
                               for f in a.factors]),
        "level": c.level, "measures": json.dumps(list(c.measures)), "decision": c.decision,
        "needs_approval": c.needs_approval,
        "reasons": json.dumps([{"conclusion": r.conclusion, "rule_id": r.rule_id, "text": r.text} for r in c.reasons]),
        "rule_version": c.rule_version, "status": a.status, "expires_at": a.expires_at,
        "approved_by": a.approved_by, "approved_at": a.approved_at, "rejected_by": a.rejected_by,
        "rejected_at": a.rejected_at, "rejection_reason": a.rejection_reason, "expired_at": a.expired_at,
        "expiry_reason": a.expiry_reason, "supersedes": a.supersedes, "version": a.version,
    }


def from_row(row) -> Assessment:
    conclusion = Conclusion(
        level=row.level, measures=tuple(json.loads(row.measures)), decision=row.decision,
        needs_approval=bool(row.needs_approval),
        reasons=tuple(Reason(**r) for r in json.loads(row.reasons)), rule_version=row.rule_version)
    return Assessment(
        assessment_id=row.assessment_id, case_id=row.case_id, county=row.county, participant_id=row.participant_id,
        stage=row.stage, assessor=row.assessor, assessed_at=_aware(row.assessed_at),
        factors=tuple(Factor(**f) for f in json.loads(row.factors)), conclusion=conclusion, status=row.status,
        expires_at=_aware(row.expires_at), approved_by=row.approved_by, approved_at=_aware(row.approved_at),
        rejected_by=row.rejected_by, rejected_at=_aware(row.rejected_at), rejection_reason=row.rejection_reason,
        expired_at=_aware(row.expired_at), expiry_reason=row.expiry_reason, supersedes=row.supersedes,
        version=row.version)


class SqlAssessmentRepository:
    def __init__(self, conn: Connection):
        self.conn = conn
        self._loaded: dict[str, int] = {}     # assessment_id -> version as read

    def add(self, assessment: Assessment) -> None:
        self.conn.execute(insert(assessments), [to_row(assessment)])
        self._loaded[assessment.assessment_id] = assessment.version

    def get(self, assessment_id: str) -> Assessment | None:
        row = self.conn.execute(select(assessments).where(assessments.c.assessment_id == assessment_id)).first()
        return from_row(row) if row else None

    def get_for_update(self, assessment_id: str) -> Assessment | None:
        query = select(assessments).where(assessments.c.assessment_id == assessment_id)
        if self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        if row is None:
            return None
        self._loaded[row.assessment_id] = row.version
        return from_row(row)

    def for_case(self, county: str, case_id: str, *, lock: bool = False) -> list[Assessment]:
        """Every assessment of the case, oldest first."""
        query = (select(assessments).where(assessments.c.county == county, assessments.c.case_id == case_id)
                 .order_by(assessments.c.assessed_at, assessments.c.assessment_id))
        if lock and self.conn.dialect.name == "postgresql":
            query = query.with_for_update()
        found = [from_row(row) for row in self.conn.execute(query)]
        if lock:
            self._loaded.update({a.assessment_id: a.version for a in found})
        return found

    def save(self, assessment: Assessment) -> None:
        """Write a changed assessment read with get_for_update or for_case(lock=True)."""
        read_version = self._loaded.get(assessment.assessment_id)
        if read_version is None:
            raise RuntimeError("save() needs an assessment read for update")
        assessment.version = read_version + 1
        row = to_row(assessment)
        result = self.conn.execute(
            update(assessments)
            .where(and_(assessments.c.assessment_id == assessment.assessment_id,
                        assessments.c.version == read_version))
            .values(**{k: v for k, v in row.items() if k != "assessment_id"}))
        if result.rowcount != 1:
            raise ConcurrentChange(f"assessment {assessment.assessment_id} was changed by someone else; "
                                   "read it again")
        self._loaded[assessment.assessment_id] = assessment.version

    def run_out_by(self, now: datetime, limit: int) -> list[Assessment]:
        """Assessments still in force whose time has run out, locked, skipping rows another sweep holds."""
        query = (select(assessments)
                 .where(assessments.c.status.in_(IN_FORCE), assessments.c.expires_at <= now)
                 .order_by(assessments.c.expires_at).limit(limit))
        if self.conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        found = [from_row(row) for row in self.conn.execute(query)]
        self._loaded.update({a.assessment_id: a.version for a in found})
        return found
