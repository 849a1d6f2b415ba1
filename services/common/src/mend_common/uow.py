"""Units of work. The state change, the events it raises (outbox) and its audit records commit
together or not at all.

- SqlUnitOfWork: one database transaction; reads and writes happen at once.
- ChainedUnitOfWork: writes only, deferred to commit and sent as one statement (see chain.py);
  for hot paths. A gate step (an insert that may conflict) makes later writes conditional;
  `completed` says whether every gate passed.
"""
from __future__ import annotations

from sqlalchemy.engine import Connection

from .chain import WriteChain
from .db import Database
from .envelope import Envelope
from .outbox import PlatformStore


class SqlUnitOfWork:
    def __init__(self, db: Database, store: PlatformStore):
        self.db = db
        self.store = store
        self.conn: Connection | None = None

    def __enter__(self):
        self._transaction = self.db.engine.begin()
        self.conn = self._transaction.__enter__()
        # Events and audit records are written together just before commit: one multi-row
        # INSERT each, however many a batch of work raised.
        self._events: list[dict] = []
        self._audits: list[dict] = []
        self.open_repositories(self.conn)
        return self

    def open_repositories(self, conn: Connection) -> None:
        """Services attach their repositories here."""

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                try:
                    self.store.outbox_step.insert_now(self.conn, self._events)
                    self.store.audit_step.insert_now(self.conn, self._audits)
                except BaseException as error:
                    self._transaction.__exit__(type(error), error, error.__traceback__)
                    raise
            committed = self._transaction.__exit__(exc_type, exc, tb)  # commit, or roll back on error
        finally:
            self.conn = None
        if exc_type is None:
            if self._events:
                self.db.outbox_written.set()  # wake a relay in this process at once
            for row in self._audits:
                self.store.audited(row["action"])
        return committed

    def publish(self, envelope: Envelope) -> None:
        self._events.append(self.store.event_row(envelope))

    def claim_events(self, consumer: str, event_ids: list[str]) -> set[str]:
        """The ids among event_ids this consumer has not seen before, claimed in one statement.
        The claims commit (or roll back) with the handler's own writes."""
        rows = [self.store.claim_row(consumer, event_id) for event_id in dict.fromkeys(event_ids)]
        return set(self.store.claim_step.insert_now(self.conn, rows, returning="event_id"))

    def audit(self, principal: str, action: str, resource_type: str, resource_id: str | None,
              county: str | None, reason: str | None = None, correlation_id: str | None = None) -> None:
        self._audits.append(self.store.audit_row(principal, action, resource_type, resource_id, county, reason,
                                                 correlation_id))


class ChainedUnitOfWork:
    def __init__(self, db: Database, store: PlatformStore):
        self.db = db
        self.store = store
        self.gates: list[bool] = []

    def __enter__(self):
        self.chain = WriteChain(self.db)
        self.gates = []
        self._events_added = 0
        self._audits: list[str] = []
        self.open_repositories(self.chain)
        return self

    def open_repositories(self, chain: WriteChain) -> None:
        """Services attach their chained repositories here."""

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            return False  # nothing was sent: the writes simply never happen
        self.gates = self.chain.run()
        if self.completed:
            if self._events_added:
                self.db.outbox_written.set()
            for action in self._audits:
                self.store.audited(action)
        return False

    @property
    def completed(self) -> bool:
        """Every gate passed, so every write was made."""
        return all(self.gates)

    def publish(self, envelope: Envelope) -> None:
        self.chain.add(self.store.outbox_step, self.store.event_row(envelope))
        self._events_added += 1

    def audit(self, principal: str, action: str, resource_type: str, resource_id: str | None,
              county: str | None, reason: str | None = None, correlation_id: str | None = None) -> None:
        self.chain.add(self.store.audit_step,
                       self.store.audit_row(principal, action, resource_type, resource_id, county, reason,
                                            correlation_id))
        self._audits.append(action)


class UnitsOfWork:
    """What service functions receive: `uows()` for a transaction, `uows.atomic()` for chained
    writes (services whose hot path needs them)."""

    def __init__(self, transactional, chained=None):
        self._transactional = transactional
        self._chained = chained

    def __call__(self):
        return self._transactional()

    def atomic(self):
        if self._chained is None:
            raise TypeError("this service has no chained unit of work")
        return self._chained()
