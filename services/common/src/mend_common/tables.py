"""Tables every service has: the outbox, the processed-events record and the audit trail."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (BigInteger, Column, DateTime, Index, Integer, MetaData, PrimaryKeyConstraint, String,
                        Table, Text)

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


@dataclass(frozen=True)
class PlatformTables:
    outbox: Table
    processed_events: Table
    audit_log: Table


def platform_tables(metadata: MetaData) -> PlatformTables:
    outbox = Table(
        "outbox", metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("event_type", String(100), nullable=False),
        Column("county", String(64), nullable=False),
        Column("body", Text, nullable=False),               # the envelope as published, JSON
        Column("correlation_id", String(64), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("available_at", DateTime(timezone=True), nullable=False),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text),
    )
    Index("ix_outbox_available", outbox.c.available_at, outbox.c.id)
    processed = Table(
        "processed_events", metadata,
        Column("consumer", String(200), nullable=False),
        Column("event_id", String(36), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False),
        PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
    )
    audit = Table(
        "audit_log", metadata,
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("principal", String(200), nullable=False),    # kind:subject
        Column("action", String(100), nullable=False),        # e.g. referral.submit, case.read
        Column("resource_type", String(50), nullable=False),
        Column("resource_id", String(64)),
        Column("county", String(64)),
        Column("correlation_id", String(64)),
        Column("reason", Text),
    )
    Index("ix_audit_resource", audit.c.resource_type, audit.c.resource_id)
    Index("ix_audit_at", audit.c.at)
    return PlatformTables(outbox, processed, audit)
