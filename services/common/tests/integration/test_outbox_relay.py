"""The outbox relay on a real broker and both databases: events nobody consumes yet are kept and
retried, but never hold back new events (a backlog of them once stopped referrals becoming cases)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import kombu
import pytest
from sqlalchemy import MetaData, select, text

from mend_common.amqp import events_exchange
from mend_common.db import Database
from mend_common.envelope import new_event
from mend_common.outbox import PlatformStore
from mend_common.relay import OutboxRelay
from mend_common.tables import platform_tables

SERVICE = "relaytest"


@pytest.fixture
def platform(database_url):
    schema = f"relay_{uuid.uuid4().hex[:8]}"
    database = Database(database_url, schema, pool_size=2)
    tables = platform_tables(MetaData())
    with database.engine.begin() as conn:
        if database.is_postgres:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            conn.execute(text(f'SET search_path TO "{schema}"'))
        tables.outbox.metadata.create_all(conn)
    yield database, tables
    database.dispose()


@pytest.fixture
def subscribed_queue(amqp_uri):
    """A durable queue bound to `wanted` events only, as a consumer's would be."""
    name = f"relaytest-{uuid.uuid4().hex[:8]}"
    with kombu.Connection(amqp_uri) as conn:
        exchange = kombu.Exchange(events_exchange(SERVICE), "topic", durable=True)
        queue = kombu.Queue(name, exchange, routing_key="wanted", durable=True)
        queue(conn.channel()).declare()
        yield conn, queue


def _write_events(db: Database, tables, event_type: str, count: int, *, created_at=None, attempts=0) -> list[str]:
    rows = []
    for _ in range(count):
        envelope = new_event(SERVICE, event_type, "county-a", {"n": 1}, correlation_id="relay-test")
        row = PlatformStore.event_row(envelope)
        if created_at is not None:
            row.update(created_at=created_at, available_at=created_at)
        row["attempts"] = attempts
        rows.append(row)
    with db.transaction() as conn:
        conn.execute(tables.outbox.insert(), rows)
    return [row["event_id"] for row in rows]


def _drain(conn, queue) -> list[str]:
    ids = []
    bound = queue(conn.channel())
    while (message := bound.get(no_ack=True)) is not None:
        ids.append(message.properties["message_id"])
    return ids


def test_a_backlog_of_unconsumed_events_never_holds_back_a_new_one(platform, amqp_uri, subscribed_queue):
    db, tables = platform
    conn, queue = subscribed_queue
    relay = OutboxRelay(db, tables, SERVICE, amqp_uri, batch_size=20)
    try:
        # More events nobody consumes than one batch holds, already retried, all due now.
        long_ago = datetime.now(timezone.utc) - timedelta(seconds=30)
        _write_events(db, tables, "unwanted", 50, created_at=long_ago, attempts=3)
        [wanted] = _write_events(db, tables, "wanted", 1)

        assert relay.relay_once() == 1
        assert _drain(conn, queue) == [wanted]
        with db.engine.connect() as c:
            left = c.execute(select(tables.outbox.c.event_type, tables.outbox.c.attempts)).all()
        # The unconsumed events are kept, none lost; those tried in this pass wait longer.
        assert len(left) == 50 and {event_type for event_type, _ in left} == {"unwanted"}
    finally:
        relay.publisher.close()


def test_unrouted_events_retry_quickly_at_first_then_are_parked_but_kept(platform, amqp_uri, subscribed_queue):
    db, tables = platform
    relay = OutboxRelay(db, tables, SERVICE, amqp_uri, batch_size=50, max_backoff_seconds=30,
                        unrouted_grace_seconds=600, parked_retry_seconds=3600)
    try:
        fresh = _write_events(db, tables, "unwanted", 2)
        old = _write_events(db, tables, "unwanted", 2, created_at=datetime.now(timezone.utc) - timedelta(hours=2),
                            attempts=9)
        before = datetime.now(timezone.utc)
        assert relay.relay_once() == 0
        with db.engine.connect() as c:
            rows = {r.event_id: r for r in c.execute(select(tables.outbox)).all()}
        assert set(rows) == set(fresh) | set(old)

        def waits(event_id):
            available = rows[event_id].available_at
            available = available if available.tzinfo else available.replace(tzinfo=timezone.utc)
            return (available - before).total_seconds()

        assert all(0 < waits(e) <= 31 and rows[e].attempts == 1 for e in fresh)
        assert all(3500 < waits(e) <= 3700 and rows[e].attempts == 10 for e in old)
        assert all("not routed" in rows[e].last_error for e in rows)
    finally:
        relay.publisher.close()


def test_once_a_consumer_binds_a_kept_event_is_delivered(platform, amqp_uri, subscribed_queue):
    db, tables = platform
    conn, queue = subscribed_queue
    relay = OutboxRelay(db, tables, SERVICE, amqp_uri)
    try:
        later = f"later-{uuid.uuid4().hex[:8]}"   # the vhost outlives one test: no binding for it yet
        [event_id] = _write_events(db, tables, later, 1)
        assert relay.relay_once() == 0
        kombu.Queue(queue.name, kombu.Exchange(events_exchange(SERVICE), "topic", durable=True),
                    routing_key=later, durable=True)(conn.channel()).declare()
        with db.transaction() as c:
            c.execute(tables.outbox.update().values(available_at=datetime.now(timezone.utc)))
        assert relay.relay_once() == 1
        assert _drain(conn, queue) == [event_id]
    finally:
        relay.publisher.close()
