"""The outbox relay: publishes committed events to RabbitMQ and forgets them only once the
broker has confirmed them. A crash anywhere loses nothing (rows stay until confirmed); it can
only publish an event twice, which idempotent consumers absorb."""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import bindparam, delete, func, select, update

from .amqp import ConfirmingPublisher, OutgoingMessage, PublishError, events_exchange
from .db import Database
from .metrics import (OUTBOX_LAG, OUTBOX_OLDEST_AGE, OUTBOX_PENDING, OUTBOX_PUBLISH_FAILURES,
                      OUTBOX_PUBLISHED)
from .tables import PlatformTables

log = logging.getLogger(__name__)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def relay_retry_options(settings) -> dict:
    return {"unrouted_grace_seconds": settings.relay_unrouted_grace_seconds,
            "parked_retry_seconds": settings.relay_parked_retry_seconds}


class OutboxRelay:
    def __init__(self, db: Database, tables: PlatformTables, service: str, amqp_uri: str, *,
                 batch_size: int = 500, linger_seconds: float = 0.01, idle_poll_seconds: float | None = None,
                 confirm_timeout: float = 10.0, max_backoff_seconds: float = 30.0,
                 unrouted_grace_seconds: float = 900.0, parked_retry_seconds: float = 3600.0):
        self.db = db
        self.outbox = tables.outbox
        self.service = service
        self.exchange = events_exchange(service)
        self.publisher = ConfirmingPublisher(amqp_uri, confirm_timeout=confirm_timeout)
        self.batch_size = batch_size
        self.linger_seconds = linger_seconds
        # PostgreSQL wakes us with NOTIFY, so polling is only a safety net there.
        self.idle_poll_seconds = idle_poll_seconds or (2.0 if db.is_postgres else 0.2)
        self.max_backoff_seconds = max_backoff_seconds
        # An event no queue is bound for yet is retried quickly for a while (a consumer may be
        # rolling out), then parked: retried hourly, so it is never lost but never crowds the rest.
        self.unrouted_grace_seconds = unrouted_grace_seconds
        self.parked_retry_seconds = parked_retry_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listen_conn = None
        self._last_gauge_update = 0.0
        self.healthy = True

    # -- one pass ---------------------------------------------------------------------
    def relay_once(self) -> int:
        """Publish up to one batch of due events. Returns how many were confirmed."""
        now = datetime.now(timezone.utc)
        query = (select(self.outbox.c.id, self.outbox.c.event_id, self.outbox.c.event_type, self.outbox.c.body,
                        self.outbox.c.correlation_id, self.outbox.c.created_at, self.outbox.c.attempts)
                 .where(self.outbox.c.available_at <= now)
                 # New events first: retries of events nobody has consumed yet must never hold
                 # back a referral behind them. Consumers do not rely on publish order.
                 .order_by(self.outbox.c.attempts, self.outbox.c.id).limit(self.batch_size))
        if self.db.is_postgres:
            # Several relays may run; each takes rows the others are not publishing.
            query = query.with_for_update(skip_locked=True)
            with self.db.transaction() as conn:
                rows = conn.execute(query).all()
                if rows:
                    confirmed = self._publish(rows)
                    self._settle(conn, rows, confirmed)
        else:
            # SQLite allows one writer: do not hold its lock while talking to the broker.
            with self.db.transaction() as conn:
                rows = conn.execute(query).all()
            if rows:
                confirmed = self._publish(rows)
                with self.db.transaction() as conn:
                    self._settle(conn, rows, confirmed)
        if not rows:
            return 0
        return len(confirmed)

    def _publish(self, rows) -> set[str]:
        messages = [OutgoingMessage(
            exchange=self.exchange, routing_key=row.event_type, body=row.body.encode(),
            message_id=row.event_id,
            # nameko turns "nameko.*" headers into the worker's context data.
            headers={"nameko.correlation_id": row.correlation_id},
        ) for row in rows]
        try:
            return self.publisher.publish_batch(messages)
        except PublishError as exc:
            OUTBOX_PUBLISH_FAILURES.labels(self.service, "broker").inc()
            self.healthy = False
            raise

    def _settle(self, conn, rows, confirmed: set[str]) -> None:
        now = datetime.now(timezone.utc)
        done = [row for row in rows if row.event_id in confirmed]
        failed = [row for row in rows if row.event_id not in confirmed]
        if done:
            conn.execute(delete(self.outbox).where(self.outbox.c.id.in_([row.id for row in done])))
        lag = OUTBOX_LAG.labels(self.service)
        published: dict[str, int] = {}
        for row in done:
            published[row.event_type] = published.get(row.event_type, 0) + 1
            lag.observe((now - _aware(row.created_at)).total_seconds())
        for event_type, count in published.items():
            OUTBOX_PUBLISHED.labels(self.service, event_type).inc(count)
        if failed:
            # Unroutable (no queue bound yet) or nacked: try again later, backing off.
            OUTBOX_PUBLISH_FAILURES.labels(self.service, "unroutable_or_nacked").inc()
            conn.execute(
                update(self.outbox).where(self.outbox.c.id == bindparam("row_id")).values(
                    attempts=bindparam("new_attempts"), available_at=bindparam("retry_at"),
                    last_error="not routed or not confirmed by the broker"),
                [{"row_id": row.id, "new_attempts": row.attempts + 1, "retry_at": now + self._retry_delay(row, now)}
                 for row in failed])
            log.warning("relay: %d events not routed or not confirmed; will retry (%s)", len(failed),
                        ", ".join(sorted({row.event_type for row in failed})))
        self.healthy = True

    def _retry_delay(self, row, now: datetime) -> timedelta:
        if (now - _aware(row.created_at)).total_seconds() > self.unrouted_grace_seconds:
            return timedelta(seconds=self.parked_retry_seconds)
        return timedelta(seconds=min(self.max_backoff_seconds, 0.5 * 2 ** min(row.attempts, 20)))

    def update_gauges(self) -> None:
        with self.db.engine.connect() as conn:
            count, oldest = conn.execute(select(func.count(), func.min(self.outbox.c.created_at))
                                         .select_from(self.outbox)).one()
        OUTBOX_PENDING.labels(self.service).set(count)
        OUTBOX_OLDEST_AGE.labels(self.service).set(
            (datetime.now(timezone.utc) - _aware(oldest)).total_seconds() if oldest else 0)

    # -- the loop ---------------------------------------------------------------------
    def _wait_for_work(self, timeout: float) -> None:
        if self.db.outbox_written.wait(0):
            self.db.outbox_written.clear()
            return
        if self.db.is_postgres:
            try:
                if self._listen_conn is None:
                    import psycopg
                    url = self.db.engine.url.set(drivername="postgresql")
                    self._listen_conn = psycopg.connect(url.render_as_string(hide_password=False),
                                                        autocommit=True, connect_timeout=5)
                    self._listen_conn.execute(f"LISTEN {self.db.notify_channel}")
                for _ in self._listen_conn.notifies(timeout=timeout, stop_after=1):
                    break
            except Exception:
                log.warning("relay: LISTEN connection failed; polling instead", exc_info=True)
                self._close_listener()
                self._stop.wait(min(timeout, 1.0))
        else:
            self.db.outbox_written.wait(timeout)
            self.db.outbox_written.clear()

    def _close_listener(self) -> None:
        if self._listen_conn is not None:
            try:
                self._listen_conn.close()
            except Exception:
                pass
            self._listen_conn = None

    def run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                published = self.relay_once()
                backoff = 0.1
            except Exception as exc:
                log.warning("relay: publishing failed, retrying in %.1fs: %s", backoff, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_seconds)
                continue
            if time.monotonic() - self._last_gauge_update > 1.0:
                try:
                    self.update_gauges()
                except Exception:
                    log.warning("relay: could not read outbox size", exc_info=True)
                self._last_gauge_update = time.monotonic()
            if published >= self.batch_size:
                continue  # more waiting: go straight on
            self.publisher.keepalive()
            self._wait_for_work(self.idle_poll_seconds)
            # Let a partial batch fill for a moment: fewer, larger publishes and transactions.
            self._stop.wait(self.linger_seconds)
        self._close_listener()
        self.publisher.close()

    def start(self) -> "OutboxRelay":
        self._thread = threading.Thread(target=self.run, name=f"outbox-relay-{self.service}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.db.outbox_written.set()
        if self._thread is not None:
            self._thread.join(timeout)
