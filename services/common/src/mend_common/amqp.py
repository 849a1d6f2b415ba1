"""RabbitMQ plumbing: a publisher with streaming confirms, and the names of our exchanges.

Events go to the topic exchange "<service>.events" with the event type as routing key, the
layout nameko's @event_handler consumes. Messages are persistent and mandatory: a message no
queue would take comes back to us (basic.return) and is treated as not delivered.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import amqp
import kombu

log = logging.getLogger(__name__)

RETRY_EXCHANGE = "mend.retry"
DEAD_LETTER_EXCHANGE = "mend.dead-letter"


def events_exchange(service: str) -> str:
    return f"{service}.events"


class PublishError(Exception):
    pass


@dataclass
class OutgoingMessage:
    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    headers: dict = field(default_factory=dict)


class ConfirmingPublisher:
    """Publishes a batch, then waits for all its confirms (not one round trip per message).

    publish_batch returns the message ids the broker confirmed AND routed to a queue; anything
    else (nacked, returned as unroutable, or unconfirmed at the timeout) must be retried.
    """

    def __init__(self, uri: str, *, connect_timeout: float = 5.0, confirm_timeout: float = 10.0,
                 heartbeat_seconds: int = 30):
        self.uri = uri
        self.heartbeat_seconds = heartbeat_seconds
        self.connect_timeout = connect_timeout
        self.confirm_timeout = confirm_timeout
        self._kombu: kombu.Connection | None = None
        self._conn: amqp.Connection | None = None
        self._channel = None
        self._declared: set[str] = set()
        self._next_tag = 1
        self._acked_upto_state: dict[int, bool] = {}
        self._returned: set[str] = set()
        self._pending: set[int] = set()

    # -- connection -------------------------------------------------------------------
    def _connect(self) -> None:
        self.close()
        # Socket read/write timeouts: a broker connection that goes silent (rather than being
        # reset) fails the batch instead of stalling the relay; the rows stay and are retried.
        # Heartbeats (sent by keepalive()) find a half-open connection while the relay is idle.
        self._kombu = kombu.Connection(self.uri, connect_timeout=self.connect_timeout,
                                       heartbeat=self.heartbeat_seconds,
                                       transport_options={"read_timeout": self.confirm_timeout,
                                                          "write_timeout": self.confirm_timeout})
        self._kombu.ensure_connection(max_retries=1, timeout=self.connect_timeout)
        self._conn = self._kombu.connection  # the underlying py-amqp connection
        self._channel = self._conn.channel()
        self._channel.confirm_select()
        self._channel.events["basic_ack"].add(self._on_ack)
        self._channel.events["basic_nack"].add(self._on_nack)
        self._channel.events["basic_return"].add(self._on_return)
        self._next_tag = 1
        self._declared.clear()

    def close(self) -> None:
        if self._kombu is not None:
            try:
                self._kombu.release()
            except Exception:  # closing a broken connection may itself fail
                pass
        self._kombu = self._conn = self._channel = None

    def keepalive(self) -> None:
        """Send a heartbeat when one is due, and drop a connection whose broker has gone silent
        for two heartbeats (the next batch reconnects). Call at least every heartbeat/2 seconds."""
        if self._conn is None or not self.heartbeat_seconds:
            return
        try:
            try:
                self._conn.drain_events(timeout=0)   # take in the broker's heartbeats
            except TimeoutError:
                pass
            self._conn.heartbeat_tick()
        except Exception as exc:
            log.warning("broker connection lost while idle (%s); reconnecting on the next batch", exc)
            self.close()

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.connected

    # -- broker callbacks -------------------------------------------------------------
    def _settle(self, delivery_tag: int, multiple: bool, ok: bool) -> None:
        if multiple:
            for tag in list(self._pending):
                if tag <= delivery_tag:
                    self._acked_upto_state[tag] = ok
                    self._pending.discard(tag)
        else:
            self._acked_upto_state[delivery_tag] = ok
            self._pending.discard(delivery_tag)

    def _on_ack(self, delivery_tag, multiple):
        self._settle(delivery_tag, multiple, True)

    def _on_nack(self, delivery_tag, multiple):
        self._settle(delivery_tag, multiple, False)

    def _on_return(self, exc, exchange, routing_key, message):
        self._returned.add(message.properties.get("message_id", ""))

    # -- publishing -------------------------------------------------------------------
    def _declare_exchange(self, name: str) -> None:
        if name not in self._declared:
            # Same arguments as nameko's get_event_exchange: topic, durable, not auto-delete.
            self._channel.exchange_declare(name, "topic", durable=True, auto_delete=False)
            self._declared.add(name)

    def publish_batch(self, messages: list[OutgoingMessage]) -> set[str]:
        if not self.connected:
            self._connect()
        tag_to_id: dict[int, str] = {}
        self._pending: set[int] = set()
        self._acked_upto_state = {}
        self._returned = set()
        try:
            for msg in messages:
                self._declare_exchange(msg.exchange)
                amqp_msg = amqp.Message(
                    msg.body, content_type="application/json", content_encoding="utf-8",
                    delivery_mode=2, message_id=msg.message_id, application_headers=msg.headers,
                )
                self._channel.basic_publish(amqp_msg, exchange=msg.exchange, routing_key=msg.routing_key,
                                            mandatory=True)
                tag_to_id[self._next_tag] = msg.message_id
                self._pending.add(self._next_tag)
                self._next_tag += 1
            deadline = time.monotonic() + self.confirm_timeout
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PublishError(f"{len(self._pending)} confirms not received within {self.confirm_timeout}s")
                try:
                    self._conn.drain_events(timeout=min(remaining, 1.0))
                except TimeoutError:
                    continue
        except PublishError:
            self.close()
            raise
        except Exception as exc:  # socket errors, channel closed by the broker, ...
            self.close()
            raise PublishError(f"publishing failed: {exc!r}") from exc
        return {mid for tag, mid in tag_to_id.items()
                if self._acked_upto_state.get(tag) and mid not in self._returned}


def declare_consumer_topology(uri: str, queue_name: str, retry_delay_ms: int) -> tuple[str, str]:
    """Declare the retry queue (waits retry_delay_ms, then goes back to the main queue) and the
    dead-letter queue for one consumer queue. Returns their names."""
    retry_queue = f"{queue_name}.retry.{retry_delay_ms}ms"
    dead_letter_queue = f"{queue_name}.dlq"
    with kombu.Connection(uri, connect_timeout=5) as conn:
        channel = conn.channel()
        retry_exchange = kombu.Exchange(RETRY_EXCHANGE, "direct", durable=True)
        dead_exchange = kombu.Exchange(DEAD_LETTER_EXCHANGE, "direct", durable=True)
        kombu.Queue(retry_queue, retry_exchange, routing_key=queue_name, durable=True, queue_arguments={
            "x-message-ttl": retry_delay_ms,
            "x-dead-letter-exchange": "",              # the default exchange...
            "x-dead-letter-routing-key": queue_name,   # ...delivers straight back to the main queue
        })(channel).declare()
        kombu.Queue(dead_letter_queue, dead_exchange, routing_key=queue_name, durable=True)(channel).declare()
    return retry_queue, dead_letter_queue
