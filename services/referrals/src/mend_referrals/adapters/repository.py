"""SQL repositories for referrals and agencies (SQLAlchemy Core: the hot path stays lean)."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection

from mend_common.chain import InsertStep, UpdateStep, WriteChain, to_json
from mend_common.fastsql import Statement

from ..domain.referral import Referral
from .tables import agencies, api_keys, referral_status_history, referrals


def _aware(ts: datetime | None) -> datetime | None:
    return ts if ts is None or ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def encode_page_token(received_at: datetime, referral_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([received_at.isoformat(), referral_id]).encode()).decode()


def decode_page_token(token: str) -> tuple[datetime, str] | None:
    try:
        at, rid = json.loads(base64.urlsafe_b64decode(token.encode()))
        return _aware(datetime.fromisoformat(at)), str(rid)
    except Exception:
        return None


REFERRAL_COLUMNS = ("referral_id", "agency_id", "county", "agency_reference", "request_id", "fingerprint", "status",
                    "case_id", "received_at", "updated_at", "draft")
STATUS_OF = Statement("SELECT status, county FROM referrals WHERE referral_id = :referral_id")
REFERRAL_STEP = InsertStep(referrals, REFERRAL_COLUMNS)
HISTORY_STEP = InsertStep(referral_status_history, ("referral_id", "status", "at", "detail"))
_status_steps: dict[tuple[str | tuple[str, ...], str], UpdateStep] = {}


def _status_step(from_status: str | tuple[str, ...], to_status: str) -> UpdateStep:
    """The referral moves only while it is still in from_status (or one of them, for a tuple)."""
    key = (from_status, to_status)
    if key not in _status_steps:
        _status_steps[key] = UpdateStep(referrals, match=("referral_id",), columns=("status", "updated_at", "case_id"),
                                        when={"status": from_status})
    return _status_steps[key]


class ChainedReferralWrites:
    """Referral writes as steps of a WriteChain (intake and status hot paths)."""

    def __init__(self, chain: WriteChain):
        self.chain = chain

    def add(self, referral: Referral) -> None:
        self.chain.add(REFERRAL_STEP, {
            "referral_id": referral.referral_id, "agency_id": referral.agency_id, "county": referral.county,
            "agency_reference": referral.agency_reference, "request_id": referral.request_id,
            "fingerprint": referral.fingerprint, "status": referral.status, "case_id": referral.case_id,
            "received_at": referral.received_at, "updated_at": referral.received_at,
            "draft": to_json(referral.draft)})


class SqlReferralRepository:
    def __init__(self, conn: Connection):
        self.conn = conn

    def _from_row(self, row, with_history: bool) -> Referral:
        referral = Referral(
            referral_id=row.referral_id, agency_id=row.agency_id, county=row.county,
            agency_reference=row.agency_reference, request_id=row.request_id, fingerprint=row.fingerprint,
            status=row.status, received_at=_aware(row.received_at), draft=json.loads(row.draft), case_id=row.case_id)
        if with_history:
            referral.history = [{"status": "received", "at": referral.received_at, "detail": "referral received"}] + [
                {"status": h.status, "at": _aware(h.at), "detail": h.detail}
                for h in self.conn.execute(select(referral_status_history)
                                           .where(referral_status_history.c.referral_id == row.referral_id)
                                           .order_by(referral_status_history.c.id))]
        return referral

    def get(self, referral_id: str, *, with_history: bool = True) -> Referral | None:
        row = self.conn.execute(select(referrals).where(referrals.c.referral_id == referral_id)).first()
        return self._from_row(row, with_history) if row else None

    def get_by_request(self, agency_id: str, request_id: str) -> Referral | None:
        row = self.conn.execute(select(referrals).where(
            and_(referrals.c.agency_id == agency_id, referrals.c.request_id == request_id))).first()
        return self._from_row(row, True) if row else None

    def get_by_reference(self, agency_id: str, agency_reference: str) -> Referral | None:
        row = self.conn.execute(select(referrals).where(
            and_(referrals.c.agency_id == agency_id, referrals.c.agency_reference == agency_reference))).first()
        return self._from_row(row, False) if row else None

    def list(self, *, agency_id: str | None, counties: frozenset[str] | None, status: str | None,
             after: tuple[datetime, str] | None, limit: int) -> list[Referral]:
        query = select(referrals)
        if agency_id is not None:
            query = query.where(referrals.c.agency_id == agency_id)
        if counties is not None:
            query = query.where(referrals.c.county.in_(sorted(counties)))
        if status:
            query = query.where(referrals.c.status == status)
        if after:
            at, rid = after
            query = query.where(or_(referrals.c.received_at < at,
                                    and_(referrals.c.received_at == at, referrals.c.referral_id < rid)))
        query = query.order_by(referrals.c.received_at.desc(), referrals.c.referral_id.desc()).limit(limit)
        return [self._from_row(row, False) for row in self.conn.execute(query)]

    def advance_status_many(self, moves: list[tuple[str, str, str]], transition: tuple[str | tuple[str, ...], str],
                            at: datetime) -> set[str]:
        """Move each referral of moves (referral_id, case_id, detail) along transition, only
        those still in transition[0] (a status, or a tuple of them), writing their history;
        returns the ids that moved. A referral named twice moves once, by its first move."""
        from_status, to_status = transition
        firsts: dict[str, tuple[str, str, str]] = {}
        for move in moves:
            firsts.setdefault(move[0], move)
        first = list(firsts.values())
        moved = set(_status_step(from_status, to_status).update_now(self.conn, [
            {"referral_id": rid, "status": to_status, "updated_at": at, "case_id": case_id}
            for rid, case_id, _ in first], returning="referral_id"))
        HISTORY_STEP.insert_now(self.conn, [{"referral_id": rid, "status": to_status, "at": at, "detail": detail}
                                            for rid, _, detail in first if rid in moved])
        return moved

    def existing(self, referral_ids: list[str]) -> set[str]:
        """Which of referral_ids are stored."""
        if not referral_ids:
            return set()
        rows = self.conn.execute(select(referrals.c.referral_id).where(referrals.c.referral_id.in_(referral_ids)))
        return {r[0] for r in rows}

    def status_of(self, referral_id: str) -> tuple[str, str] | None:
        """(status, county) without loading the referral."""
        rows = STATUS_OF.execute(self.conn, {"referral_id": referral_id})
        return (rows[0][0], rows[0][1]) if rows else None


class SqlAgencyRepository:
    def __init__(self, conn: Connection):
        self.conn = conn

    def add(self, agency: dict) -> None:
        self.conn.execute(agencies.insert(), agency)

    def get(self, agency_id: str) -> dict | None:
        row = self.conn.execute(select(agencies).where(agencies.c.agency_id == agency_id)).first()
        return dict(row._mapping) if row else None

    def find_by_name(self, county: str, name: str) -> dict | None:
        row = self.conn.execute(select(agencies).where(
            and_(agencies.c.county == county, agencies.c.name == name))).first()
        return dict(row._mapping) if row else None

    def list(self, counties: frozenset[str]) -> list[dict]:
        rows = self.conn.execute(select(agencies).where(agencies.c.county.in_(sorted(counties)))
                                 .order_by(agencies.c.county, agencies.c.name))
        return [dict(r._mapping) for r in rows]

    def add_key(self, key: dict) -> None:
        self.conn.execute(api_keys.insert(), key)

    def get_key(self, key_id: str) -> dict | None:
        row = self.conn.execute(
            select(api_keys, agencies.c.county, agencies.c.name.label("agency_name"), agencies.c.active)
            .join(agencies, agencies.c.agency_id == api_keys.c.agency_id)
            .where(api_keys.c.key_id == key_id)).first()
        return dict(row._mapping) if row else None

    def revoke_key(self, key_id: str, at: datetime) -> bool:
        result = self.conn.execute(update(api_keys).where(
            and_(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))).values(revoked_at=at))
        return result.rowcount == 1
