"""ConfirmingPublisher against the real broker: confirmed and routed messages are reported,
unroutable ones are not, and an idle connection is kept alive by heartbeats."""
from __future__ import annotations

import time
import uuid

import kombu

from mend_common.amqp import ConfirmingPublisher, OutgoingMessage

EXCHANGE = "test.events"


def _bind_queue(uri: str, routing_key: str) -> str:
    name = f"q-{uuid.uuid4().hex[:8]}"
    with kombu.Connection(uri, connect_timeout=5) as conn:
        exchange = kombu.Exchange(EXCHANGE, "topic", durable=True)
        kombu.Queue(name, exchange, routing_key=routing_key, durable=True)(conn.default_channel).declare()
    return name


def _message(routing_key: str, headers: dict | None = None) -> OutgoingMessage:
    return OutgoingMessage(exchange=EXCHANGE, routing_key=routing_key, body=b'{"x": 1}',
                           message_id=str(uuid.uuid4()), headers=headers or {})


def test_reports_only_what_the_broker_confirmed_and_routed(rabbit_vhost):
    _bind_queue(rabbit_vhost.uri, "routed")
    publisher = ConfirmingPublisher(rabbit_vhost.uri)
    try:
        routed, unroutable = _message("routed"), _message("nobody-listens")
        assert publisher.publish_batch([routed, unroutable]) == {routed.message_id}
    finally:
        publisher.close()


def test_an_idle_connection_survives_heartbeats_and_still_publishes(rabbit_vhost):
    _bind_queue(rabbit_vhost.uri, "routed")
    publisher = ConfirmingPublisher(rabbit_vhost.uri, heartbeat_seconds=2)
    try:
        publisher.publish_batch([_message("routed")])
        assert publisher._conn.heartbeat == 2             # negotiated with the broker
        for _ in range(12):                               # 6 s idle: three heartbeat periods
            publisher.keepalive()
            time.sleep(0.5)
        assert publisher.connected                        # the broker's heartbeats were read
        message = _message("routed")
        assert publisher.publish_batch([message]) == {message.message_id}
    finally:
        publisher.close()


def test_the_message_arrives_with_its_id_and_headers(rabbit_vhost):
    """nameko reads "nameko.*" headers into the worker's context (the correlation id)."""
    queue = _bind_queue(rabbit_vhost.uri, "with-headers")
    publisher = ConfirmingPublisher(rabbit_vhost.uri)
    try:
        sent = _message("with-headers", {"nameko.correlation_id": "corr-42"})
        assert publisher.publish_batch([sent]) == {sent.message_id}
    finally:
        publisher.close()
    with kombu.Connection(rabbit_vhost.uri, connect_timeout=5) as conn:
        received = conn.SimpleQueue(queue).get(timeout=5)
        received.ack()
    assert received.headers == {"nameko.correlation_id": "corr-42"}
    assert received.properties["message_id"] == sent.message_id
    assert received.properties["delivery_mode"] == 2
