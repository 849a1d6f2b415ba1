"""A unit of work over one database transaction: the service's writes, the events they raise
(outbox) and the audit records commit together or not at all."""
from __future__ import annotations

from sqlalchemy.engine import Connection

from .db import Database
from .envelope import Envelope
from .outbox import PlatformStore


class SqlUnitOfWork:
    def __init__(self, db: Database, store: PlatformStore):
        self.db = db
        self.store = store
        self.conn: Connection | None = None
        self._events_added = 0

    def __enter__(self):
        self._transaction = self.db.engine.begin()
        self.conn = self._transaction.__enter__()
        self._events_added = 0
        self.open_repositories(self.conn)
        return self

    def open_repositories(self, conn: Connection) -> None:
        """Services attach their repositories here."""

    def __exit__(self, exc_type, exc, tb):
        try:
            return self._transaction.__exit__(exc_type, exc, tb)  # commit, or roll back on error
        finally:
            if exc_type is None and self._events_added:
                self.db.outbox_written.set()  # wake a relay in this process at once
            self.conn = None

    def publish(self, envelope: Envelope) -> None:
        self.store.add_event(self.conn, envelope)
        self._events_added += 1

    def claim_event(self, consumer: str, event_id: str) -> bool:
        return self.store.claim_event(self.conn, consumer, event_id)

    def audit(self, principal: str, action: str, resource_type: str, resource_id: str | None,
              county: str | None, reason: str | None = None) -> None:
        self.store.audit(self.conn, principal, action, resource_type, resource_id, county, reason)
