"""Writing to the outbox, claiming events for idempotent consumers, and auditing: all inside
the caller's transaction, so the state change, its event and its audit record commit together."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from .db import Database
from .envelope import Envelope
from .logs import current_correlation_id
from .metrics import AUDIT_RECORDS
from .tables import PlatformTables


class PlatformStore:
    def __init__(self, db: Database, tables: PlatformTables, service: str, *, notify: bool = True):
        self.db = db
        self.tables = tables
        self.service = service
        dialect_insert = postgresql.insert if db.is_postgres else sqlite.insert
        # RETURNING, not rowcount: psycopg 3 reports no reliable rowcount for ON CONFLICT DO NOTHING.
        self._claim = (dialect_insert(tables.processed_events).on_conflict_do_nothing()
                       .returning(tables.processed_events.c.event_id))
        # NOTIFY wakes relays in other processes; a relay in this process is woken directly.
        self._notify = text(f"NOTIFY {db.notify_channel}") if db.is_postgres and notify else None

    def add_event(self, conn: Connection, envelope: Envelope) -> None:
        now = datetime.now(timezone.utc)
        conn.execute(self.tables.outbox.insert(), {
            "event_id": envelope.event_id,
            "event_type": envelope.type,
            "county": envelope.county,
            "body": json.dumps(envelope.to_dict(), separators=(",", ":")),
            "correlation_id": envelope.correlation_id,
            "created_at": now,
            "available_at": now,
        })
        if self._notify is not None:
            # Delivered at commit, once per transaction however many events it adds.
            conn.execute(self._notify)

    def claim_event(self, conn: Connection, consumer: str, event_id: str) -> bool:
        """True the first time this consumer sees the event; False for a redelivery.
        Commits (or rolls back) with the handler's own writes."""
        result = conn.execute(self._claim, {
            "consumer": consumer, "event_id": event_id, "processed_at": datetime.now(timezone.utc)})
        return result.first() is not None

    def audit(self, conn: Connection, principal: str, action: str, resource_type: str,
              resource_id: str | None, county: str | None, reason: str | None = None) -> None:
        conn.execute(self.tables.audit_log.insert(), {
            "at": datetime.now(timezone.utc),
            "principal": principal,
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "county": county,
            "correlation_id": current_correlation_id() or None,
            "reason": reason,
        })
        AUDIT_RECORDS.labels(self.service, action).inc()
