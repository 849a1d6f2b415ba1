"""Writing to the outbox, claiming events for idempotent consumers, and auditing: all inside
the caller's transaction, so the state change, its event and its audit record commit together."""
from __future__ import annotations

from datetime import datetime, timezone

from .db import Database
from .envelope import Envelope
from .chain import InsertStep, to_json
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
        self.claim_step = InsertStep(tables.processed_events, claim_columns, on_conflict="ON CONFLICT DO NOTHING")
        self.outbox_step = InsertStep(tables.outbox, outbox_columns)
        self.audit_step = InsertStep(tables.audit_log, audit_columns)

    # -- rows -------------------------------------------------------------------------
    @staticmethod
    def event_row(envelope: Envelope) -> dict:
        now = datetime.now(timezone.utc)
        return {"event_id": envelope.event_id, "event_type": envelope.type, "county": envelope.county,
                "body": to_json(envelope.to_dict()),
                "correlation_id": envelope.correlation_id, "created_at": now, "available_at": now, "attempts": 0}

    @staticmethod
    def claim_row(consumer: str, event_id: str) -> dict:
        return {"consumer": consumer, "event_id": event_id, "processed_at": datetime.now(timezone.utc)}

    @staticmethod
    def audit_row(principal: str, action: str, resource_type: str, resource_id: str | None, county: str | None,
                  reason: str | None = None, correlation_id: str | None = None) -> dict:
        """correlation_id defaults to the current one (a batch of events passes each event's)."""
        return {"at": datetime.now(timezone.utc), "principal": principal, "action": action,
                "resource_type": resource_type, "resource_id": resource_id, "county": county,
                "correlation_id": correlation_id or current_correlation_id() or None, "reason": reason}

    def audited(self, action: str) -> None:
        AUDIT_RECORDS.labels(self.service, action).inc()
