"""Writing to the outbox, claiming events for idempotent consumers, and auditing: all inside
the caller's transaction, so the state change, its event and its audit record commit together."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy.engine import Connection

from .db import Database
from .envelope import Envelope
from .fastsql import insert
from .logs import current_correlation_id
from .metrics import AUDIT_RECORDS
from .tables import PlatformTables


class PlatformStore:
    def __init__(self, db: Database, tables: PlatformTables, service: str):
        self.db = db
        self.tables = tables
        self.service = service
        # RETURNING, not rowcount: psycopg 3 reports no reliable rowcount for ON CONFLICT DO NOTHING.
        self._claim = insert("processed_events", ("consumer", "event_id", "processed_at"),
                             "ON CONFLICT DO NOTHING RETURNING event_id")
        self._add_event = insert("outbox", ("event_id", "event_type", "county", "body", "correlation_id",
                                            "created_at", "available_at"))
        self._audit = insert("audit_log", ("at", "principal", "action", "resource_type", "resource_id", "county",
                                           "correlation_id", "reason"))

    def add_event(self, conn: Connection, envelope: Envelope) -> None:
        now = datetime.now(timezone.utc)
        self._add_event.execute(conn, {
            "event_id": envelope.event_id,
            "event_type": envelope.type,
            "county": envelope.county,
            "body": json.dumps(envelope.to_dict(), separators=(",", ":")),
            "correlation_id": envelope.correlation_id,
            "created_at": now,
            "available_at": now,
        })

    def claim_event(self, conn: Connection, consumer: str, event_id: str) -> bool:
        """True the first time this consumer sees the event; False for a redelivery.
        Commits (or rolls back) with the handler's own writes."""
        return bool(self._claim.execute(conn, {
            "consumer": consumer, "event_id": event_id, "processed_at": datetime.now(timezone.utc)}))

    def audit(self, conn: Connection, principal: str, action: str, resource_type: str,
              resource_id: str | None, county: str | None, reason: str | None = None) -> None:
        self._audit.execute(conn, {
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
