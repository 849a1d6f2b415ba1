"""Writing to the outbox, claiming events for idempotent consumers, and auditing: all inside
the caller's transaction, so the state change, its event and its audit record commit together."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from sqlalchemy.engine import Connection

from .db import Database
from .envelope import Envelope
from .chain import InsertStep
from .fastsql import insert
from .logs import current_correlation_id
from .metrics import AUDIT_RECORDS
from .tables import PlatformTables


class PlatformStore:
    """The outbox, processed-events and audit rows, written either at once inside a transaction
    (SqlUnitOfWork) or as steps of a deferred WriteChain (ChainedUnitOfWork)."""

    def __init__(self, db: Database, tables: PlatformTables, service: str):
        self.db = db
        self.tables = tables
        self.service = service
        claim_columns = ("consumer", "event_id", "processed_at")
        outbox_columns = ("event_id", "event_type", "county", "body", "correlation_id", "created_at", "available_at",
                          "attempts")
        audit_columns = ("at", "principal", "action", "resource_type", "resource_id", "county", "correlation_id",
                         "reason")
        # RETURNING, not rowcount: psycopg 3 reports no reliable rowcount for ON CONFLICT DO NOTHING.
        self._claim = insert("processed_events", claim_columns, "ON CONFLICT DO NOTHING RETURNING event_id")
        self._add_event = insert("outbox", outbox_columns)
        self._audit = insert("audit_log", audit_columns)
        self.claim_step = InsertStep(tables.processed_events, claim_columns, on_conflict="ON CONFLICT DO NOTHING",
                                     gate=True)
        self.outbox_step = InsertStep(tables.outbox, outbox_columns)
        self.audit_step = InsertStep(tables.audit_log, audit_columns)

    # -- rows -------------------------------------------------------------------------
    @staticmethod
    def event_row(envelope: Envelope) -> dict:
        now = datetime.now(timezone.utc)
        return {"event_id": envelope.event_id, "event_type": envelope.type, "county": envelope.county,
                "body": json.dumps(envelope.to_dict(), separators=(",", ":")),
                "correlation_id": envelope.correlation_id, "created_at": now, "available_at": now, "attempts": 0}

    @staticmethod
    def claim_row(consumer: str, event_id: str) -> dict:
        return {"consumer": consumer, "event_id": event_id, "processed_at": datetime.now(timezone.utc)}

    @staticmethod
    def audit_row(principal: str, action: str, resource_type: str, resource_id: str | None, county: str | None,
                  reason: str | None = None) -> dict:
        return {"at": datetime.now(timezone.utc), "principal": principal, "action": action,
                "resource_type": resource_type, "resource_id": resource_id, "county": county,
                "correlation_id": current_correlation_id() or None, "reason": reason}

    def audited(self, action: str) -> None:
        AUDIT_RECORDS.labels(self.service, action).inc()

    # -- immediate writes inside a transaction ------------------------------------------
    def add_event(self, conn: Connection, envelope: Envelope) -> None:
        self._add_event.execute(conn, self.event_row(envelope))

    def claim_event(self, conn: Connection, consumer: str, event_id: str) -> bool:
        """True the first time this consumer sees the event; False for a redelivery.
        Commits (or rolls back) with the handler's own writes."""
        return bool(self._claim.execute(conn, self.claim_row(consumer, event_id)))

    def audit(self, conn: Connection, principal: str, action: str, resource_type: str,
              resource_id: str | None, county: str | None, reason: str | None = None) -> None:
        self._audit.execute(conn, self.audit_row(principal, action, resource_type, resource_id, county, reason))
        self.audited(action)
