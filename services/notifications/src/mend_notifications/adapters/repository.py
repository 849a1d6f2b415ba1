"""SQL for the notifications service: messages (the delivery queue and its history), templates,
contact preferences, releases, staff and referrer contacts, and the referral and meeting
projections built from other services' events."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from .tables import (contact_preferences, meetings, messages, referral_refs, referrer_contacts, releases,
                     staff_contacts, templates)


def _aware(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


class SqlNotificationsRepository:
    def __init__(self, conn: Connection):
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"

    def _insert_ignore(self, table, rows: list[dict], keys: list[str]) -> int:
        """Insert, skipping rows whose key exists already. Returns how many were new."""
        return len(self._insert_new(table, rows, keys, keys[0]))

    def _insert_new(self, table, rows: list[dict], keys: list[str], returning: str) -> list:
        """Insert, skipping rows whose key exists; the `returning` column of the rows added
        (rowcount of a multi-row INSERT ... ON CONFLICT is -1 on PostgreSQL)."""
        added = []
        dialect_insert = pg_insert if self.postgres else sqlite_insert
        for row in rows:    # one statement per row: RETURNING with executemany is not portable
            stmt = dialect_insert(table).values(**row).on_conflict_do_nothing(index_elements=keys)
            added += self.conn.execute(stmt.returning(table.c[returning])).scalars().all()
        return added

    def _upsert(self, table, row: dict, keys: list[str]) -> None:
        dialect_insert = pg_insert if self.postgres else sqlite_insert
        stmt = dialect_insert(table).values(**row)
        stmt = stmt.on_conflict_do_update(index_elements=keys,
                                          set_={k: stmt.excluded[k] for k in row if k not in keys})
        self.conn.execute(stmt)

    # -- messages -----------------------------------------------------------------------
    def add_messages(self, rows: list[dict]) -> list[str]:
        """Queue messages; one with a dedupe key already present is not added again. Returns the
        dedupe keys of those added."""
        return self._insert_new(messages, rows, ["dedupe_key"], "dedupe_key")

    def message(self, message_id: str):
        return self.conn.execute(select(messages).where(messages.c.message_id == message_id)).first()

    def messages_for_case(self, county: str, case_id: str) -> list:
        return self.conn.execute(select(messages).where(messages.c.county == county, messages.c.case_id == case_id)
                                 .order_by(messages.c.created_at, messages.c.message_id)).all()

    def claim_due(self, now: datetime, lease_seconds: float, limit: int) -> list:
        """Due messages (queued and due, or sending with a lapsed lease after a crash), marked
        as being sent by this dispatcher until the lease ends."""
        due = or_(and_(messages.c.status == "queued", messages.c.next_attempt_at <= now),
                  and_(messages.c.status == "sending", messages.c.claimed_until < now))
        query = select(messages).where(due).order_by(messages.c.next_attempt_at).limit(limit)
        if self.postgres:
            query = query.with_for_update(skip_locked=True)
        rows = self.conn.execute(query).all()
        if rows:
            self.conn.execute(update(messages).where(messages.c.message_id.in_([r.message_id for r in rows]))
                              .values(status="sending", claimed_until=now + timedelta(seconds=lease_seconds)))
        return rows

    def extend_claims(self, message_ids: list[str], until: datetime) -> None:
        """Keep holding messages still waiting their turn in this dispatcher's batch."""
        if message_ids:
            self.conn.execute(update(messages).where(messages.c.message_id.in_(message_ids),
                                                     messages.c.status == "sending").values(claimed_until=until))

    def settle(self, message_id: str, **values) -> bool:
        """Record a delivery outcome for a message this dispatcher holds."""
        result = self.conn.execute(update(messages).where(messages.c.message_id == message_id,
                                                          messages.c.status == "sending").values(**values))
        return result.rowcount == 1

    def set_status(self, message_id: str, when_status: tuple[str, ...], **values) -> bool:
        result = self.conn.execute(update(messages).where(messages.c.message_id == message_id,
                                                          messages.c.status.in_(when_status)).values(**values))
        return result.rowcount == 1

    def awaiting_provider_status(self, limit: int) -> list:
        return self.conn.execute(select(messages.c.message_id, messages.c.provider_ref, messages.c.channel,
                                        messages.c.county, messages.c.case_id)
                                 .where(messages.c.status == "sent", messages.c.channel.in_(("sms", "letter")),
                                        messages.c.provider_ref != "")
                                 .order_by(messages.c.sent_at).limit(limit)).all()

    def count_by_status(self) -> dict[str, int]:
        return dict(self.conn.execute(select(messages.c.status, func.count()).group_by(messages.c.status)).all())

    # -- templates ----------------------------------------------------------------------
    def latest_template(self, message_type: str, channel: str, language: str):
        return self.conn.execute(
            select(templates).where(templates.c.message_type == message_type, templates.c.channel == channel,
                                    templates.c.language == language)
            .order_by(templates.c.version.desc()).limit(1)).first()

    def save_template(self, row: dict) -> None:
        self.conn.execute(insert(templates), [row])

    def templates(self, message_type: str = "") -> list:
        query = select(templates)
        if message_type:
            query = query.where(templates.c.message_type == message_type)
        return self.conn.execute(query.order_by(templates.c.message_type, templates.c.channel, templates.c.language,
                                                templates.c.version)).all()

    # -- people -------------------------------------------------------------------------
    def preferences(self, case_id: str) -> dict[str, object]:
        rows = self.conn.execute(select(contact_preferences).where(contact_preferences.c.case_id == case_id)).all()
        return {r.participant_id: r for r in rows}

    def set_preferences(self, row: dict) -> None:
        self._upsert(contact_preferences, row, ["case_id", "participant_id"])

    def releases(self, case_id: str) -> set[tuple[str, str, str]]:
        rows = self.conn.execute(select(releases.c.about_participant_id, releases.c.to_participant_id,
                                        releases.c.field).where(releases.c.case_id == case_id)).all()
        return {tuple(r) for r in rows}

    def add_releases(self, rows: list[dict]) -> None:
        self._insert_new(releases, rows, ["case_id", "about_participant_id", "to_participant_id", "field"], "field")

    def staff(self, county: str, *, role: str | None = None, subjects: list[str] | None = None) -> list:
        query = select(staff_contacts).where(staff_contacts.c.county == county, staff_contacts.c.active.is_(True))
        if subjects is not None:
            query = query.where(staff_contacts.c.subject.in_(subjects))
        rows = self.conn.execute(query.order_by(staff_contacts.c.subject)).all()
        return [r for r in rows if role is None or role in json.loads(r.roles)]

    def set_staff(self, row: dict) -> None:
        self._upsert(staff_contacts, row, ["county", "subject"])

    def referrer(self, agency_id: str):
        return self.conn.execute(select(referrer_contacts).where(referrer_contacts.c.agency_id == agency_id)).first()

    def set_referrer(self, row: dict) -> None:
        self._upsert(referrer_contacts, row, ["agency_id"])

    # -- projections --------------------------------------------------------------------
    def remember_referral(self, row: dict) -> None:
        self._insert_ignore(referral_refs, [row], ["referral_id"])

    def referral(self, referral_id: str):
        return self.conn.execute(select(referral_refs).where(referral_refs.c.referral_id == referral_id)).first()

    def link_case(self, referral_id: str, case_id: str) -> None:
        self.conn.execute(update(referral_refs).where(referral_refs.c.referral_id == referral_id)
                          .values(case_id=case_id))

    def meeting(self, meeting_id: str):
        return self.conn.execute(select(meetings).where(meetings.c.meeting_id == meeting_id)).first()

    def upsert_meeting(self, row: dict) -> None:
        self._upsert(meetings, row, ["meeting_id"])

    def meetings_needing_reminders(self, now: datetime, limit: int, *, lock: bool = False,
                                   meeting_ids: list[str] | None = None) -> list:
        """Scheduled meetings with a reminder due and still to come; with lock, locked so one
        sweep takes each."""
        query = select(meetings).where(meetings.c.next_reminder_at <= now, meetings.c.status == "scheduled",
                                       meetings.c.starts_at > now)
        if meeting_ids is not None:
            query = query.where(meetings.c.meeting_id.in_(meeting_ids))
        query = query.order_by(meetings.c.next_reminder_at).limit(limit)
        if lock and self.postgres:
            query = query.with_for_update(skip_locked=True)
        return self.conn.execute(query).all()

    def mark_reminded(self, meeting_id: str, offsets: list[int], next_reminder_at: datetime | None) -> None:
        self.conn.execute(update(meetings).where(meetings.c.meeting_id == meeting_id)
                          .values(reminders_done=json.dumps(sorted(offsets)), next_reminder_at=next_reminder_at))

    def forget_meetings_before(self, before: datetime) -> int:
        return self.conn.execute(delete(meetings).where(meetings.c.ends_at < before)).rowcount
