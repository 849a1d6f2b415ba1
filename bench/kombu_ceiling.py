"""Raw throughput ceiling of durable, confirmed RabbitMQ messaging with plain kombu/py-amqp.

This is a benchmark, not a test. It measures, on the same broker the services use, how fast
one Python process can push messages through RabbitMQ when every message is:

* persistent (``delivery_mode=2``) and sent to a durable queue, and
* confirmed by the broker (publisher confirms), and, in phase 2,
* consumed with manual acknowledgements.

The end-to-end referral pipeline does all of that plus real work, so its throughput is best
reported as a fraction of the figures measured here.

Phase 1 (publish only): confirmed messages per second into a fresh durable queue.
Phase 2 (publish + consume): one publisher thread and one consumer, each on its own
connection, running at the same time; messages per second from the first publish to the last
message consumed.

Why py-amqp directly instead of ``kombu.Producer(confirm_publish=True)``: with
``confirm_publish`` py-amqp swaps ``Channel.basic_publish`` for ``basic_publish_confirm``,
which waits for the broker's ack after *every* message (one round trip each). Here confirm
mode is switched on by hand with ``channel.confirm_select()`` while the connection keeps
``confirm_publish=False``, so ``basic_publish`` stays the plain, non-waiting
``_basic_publish``; acks are collected asynchronously through ``channel.events['basic_ack']``
with at most ``CONFIRM_WINDOW`` messages unconfirmed at any time ("streaming confirms").

Usage::

    python bench/kombu_ceiling.py [--amqp-uri URI] [--messages N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
import uuid

import amqp
import kombu

DEFAULT_AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"

CONFIRM_WINDOW = 1000  # most messages in flight without a publisher confirm
PREFETCH = 500  # consumer prefetch (basic.qos prefetch_count)
ACK_EVERY = 250  # consumer acks with multiple=True every N messages (< PREFETCH)
CONNECT_TIMEOUT = 5.0  # seconds
DRAIN_SLICE = 1.0  # longest single drain_events() wait, so deadlines are re-checked often


class _ConfirmTracker:
    """Counts publisher confirms on one channel, honouring ``multiple``.

    Delivery tags in confirm mode are 1, 2, 3, ... in publish order. An ack/nack with
    ``multiple=True`` settles every still-unsettled tag up to and including ``delivery_tag``;
    without it, exactly that tag. RabbitMQ normally settles in order, but single out-of-order
    settlements are handled too (kept in ``_above`` until the floor catches up), so nothing is
    counted twice.
    """

    def __init__(self) -> None:
        self.published = 0  # last delivery tag handed out
        self.acked = 0
        self.nacked = 0
        self._floor = 0  # every tag <= _floor is settled
        self._above: set[int] = set()  # tags > _floor settled individually

    @property
    def unsettled(self) -> int:
        return self.published - self.acked - self.nacked

    def on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self.acked += self._settle(delivery_tag, multiple)

    def on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacked += self._settle(delivery_tag, multiple)

    def _settle(self, tag: int, multiple: bool) -> int:
        if tag <= self._floor:
            return 0
        if multiple:
            already = {t for t in self._above if t <= tag}
            self._above -= already
            count = tag - self._floor - len(already)
            self._floor = tag
        elif tag in self._above:
            return 0
        else:
            self._above.add(tag)
            count = 1
        while self._floor + 1 in self._above:  # compact after out-of-order singles
            self._above.remove(self._floor + 1)
            self._floor += 1
        return count


def _connect(amqp_uri: str) -> tuple[kombu.Connection, amqp.Connection]:
    """Open a kombu connection and return it with the underlying py-amqp connection."""
    conn = kombu.Connection(amqp_uri, connect_timeout=CONNECT_TIMEOUT)
    conn.connect()
    raw = conn.connection
    if not isinstance(raw, amqp.Connection):
        raise RuntimeError(f"expected a py-amqp transport, got {type(raw)!r} for {amqp_uri!r}")
    # With confirm_publish=True every channel's basic_publish would wait per message.
    if raw.confirm_publish:
        raise RuntimeError("connection has confirm_publish=True; streaming confirms need it off")
    # Socket writes must not hang forever either (reads are bounded per drain_events call).
    raw.transport.sock.settimeout(CONNECT_TIMEOUT)
    return conn, raw


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("kombu ceiling benchmark exceeded its seconds_limit")
    return left


def _drain(raw: amqp.Connection, deadline: float) -> None:
    """Process incoming frames for at most DRAIN_SLICE seconds (bounded by deadline)."""
    # Check the deadline *outside* the try: since Python 3.10 socket.timeout is TimeoutError,
    # so the except clause below would otherwise swallow our own deadline error.
    timeout = min(DRAIN_SLICE, _remaining(deadline))
    try:
        raw.drain_events(timeout=timeout)
    except socket.timeout:
        pass  # nothing arrived in this slice; the caller re-checks its condition and deadline


def _publish_confirmed(
    raw: amqp.Connection,
    queue: str,
    messages: int,
    body: bytes,
    deadline: float,
    started: list[float] | None = None,
) -> tuple[float, float]:
    """Publish ``messages`` persistent messages with streaming confirms; return (t0, t_end).

    t0 is taken just before the first publish, t_end when the last confirm has arrived.
    If ``started`` is given, t0 is appended to it as soon as it is known.
    """
    channel = raw.channel()
    try:
        tracker = _ConfirmTracker()
        channel.events["basic_ack"].add(tracker.on_ack)
        channel.events["basic_nack"].add(tracker.on_nack)
        channel.confirm_select()  # waits for confirm.select-ok; tags start at 1 from here

        t0 = time.monotonic()
        if started is not None:
            started.append(t0)
        for _ in range(messages):
            # Keep at most CONFIRM_WINDOW unconfirmed; drain acks only when the window is full.
            # (py-amqp also reads one pending frame, non-blocking, inside each basic_publish
            # because it advertises the connection.blocked capability, so acks trickle in.)
            while tracker.unsettled >= CONFIRM_WINDOW:
                _drain(raw, deadline)
            # A fresh Message per publish, as a real producer would build one.
            msg = amqp.Message(body, delivery_mode=2, content_type="application/octet-stream")
            channel.basic_publish(msg, exchange="", routing_key=queue)
            tracker.published += 1
        while tracker.unsettled > 0:
            _drain(raw, deadline)
        t_end = time.monotonic()
    finally:
        _close_quietly(channel)

    if tracker.nacked:
        raise RuntimeError(f"broker nacked {tracker.nacked} of {messages} messages")
    return t0, t_end


def _close_quietly(closable) -> None:
    try:
        closable.close()
    except Exception:  # noqa: BLE001 - cleanup must not mask the real error
        pass


def _declare_queue(raw: amqp.Connection) -> str:
    name = f"mend.bench.kombu-ceiling.{uuid.uuid4().hex[:12]}"
    channel = raw.channel()
    try:
        channel.queue_declare(name, durable=True, exclusive=False, auto_delete=False)
    finally:
        _close_quietly(channel)
    return name


def _delete_queue(amqp_uri: str, name: str) -> None:
    """Delete a benchmark queue on a fresh connection (the others may be broken by now)."""
    try:
        conn, raw = _connect(amqp_uri)
    except Exception as exc:  # noqa: BLE001
        print(f"warning: could not delete queue {name}: {exc}", file=sys.stderr)
        return
    try:
        channel = raw.channel()
        channel.queue_delete(name)
        _close_quietly(channel)
    except Exception as exc:  # noqa: BLE001
        print(f"warning: could not delete queue {name}: {exc}", file=sys.stderr)
    finally:
        _close_quietly(conn)


def _phase_publish_only(amqp_uri: str, messages: int, body: bytes, deadline: float) -> float:
    conn, raw = _connect(amqp_uri)
    queue = None
    try:
        queue = _declare_queue(raw)
        t0, t_end = _publish_confirmed(raw, queue, messages, body, deadline)
    finally:
        _close_quietly(conn)
        if queue is not None:
            _delete_queue(amqp_uri, queue)
    return messages / (t_end - t0)


def _phase_publish_and_consume(
    amqp_uri: str, messages: int, body: bytes, deadline: float
) -> float:
    consumer_conn, consumer_raw = _connect(amqp_uri)
    publisher_conn = None
    queue = None
    publisher: threading.Thread | None = None
    errors: list[BaseException] = []
    started: list[float] = []
    try:
        queue = _declare_queue(consumer_raw)
        publisher_conn, publisher_raw = _connect(amqp_uri)

        # Consumer: manual acks, bounded prefetch, one multiple-ack per ACK_EVERY messages.
        channel = consumer_raw.channel()
        channel.basic_qos(prefetch_size=0, prefetch_count=PREFETCH, a_global=False)
        consumed = 0
        unacked_tag = None  # newest delivery tag not yet acknowledged
        t_last = 0.0

        def on_message(message: amqp.Message) -> None:
            nonlocal consumed, unacked_tag, t_last
            consumed += 1
            unacked_tag = message.delivery_tag
            if consumed % ACK_EVERY == 0:
                channel.basic_ack(unacked_tag, multiple=True)
                unacked_tag = None
            if consumed == messages:
                t_last = time.monotonic()

        # basic_consume waits for consume-ok, so the consumer is live before publishing starts.
        channel.basic_consume(queue, callback=on_message, no_ack=False)

        # py-amqp connections are not thread-safe: the publisher thread owns publisher_raw
        # exclusively, the main thread owns consumer_raw.
        def publish() -> None:
            try:
                _publish_confirmed(publisher_raw, queue, messages, body, deadline, started)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                errors.append(exc)

        publisher = threading.Thread(target=publish, name="kombu-ceiling-publisher", daemon=True)
        publisher.start()

        while consumed < messages:
            if errors:
                raise errors[0]
            _drain(consumer_raw, deadline)
        if unacked_tag is not None:
            channel.basic_ack(unacked_tag, multiple=True)

        publisher.join(timeout=max(0.0, deadline - time.monotonic()))
        if publisher.is_alive():
            raise TimeoutError("publisher thread did not finish within seconds_limit")
        if errors:
            raise errors[0]
        _close_quietly(channel)
    finally:
        _close_quietly(consumer_conn)
        if publisher is not None and publisher.is_alive():
            # Only reachable on an error path; its drain slices end within DRAIN_SLICE, and the
            # deadline check then stops it. Closing its connection under it would race.
            publisher.join(timeout=DRAIN_SLICE + CONNECT_TIMEOUT)
        if publisher_conn is not None:
            _close_quietly(publisher_conn)
        if queue is not None:
            _delete_queue(amqp_uri, queue)
    return messages / (t_last - started[0])


def measure_ceiling(
    amqp_uri: str,
    messages: int = 20000,
    payload_bytes: int = 600,
    seconds_limit: float = 60,
) -> dict:
    """Measure durable, confirmed publish and publish+consume throughput with plain py-amqp.

    ``seconds_limit`` bounds the whole measurement (both phases); exceeding it raises
    TimeoutError. Each phase uses its own fresh durable queue, deleted afterwards.

    Returns ``{"publish_per_s", "publish_consume_per_s", "messages", "payload_bytes"}``.
    """
    if messages <= 0:
        raise ValueError("messages must be positive")
    if payload_bytes < 0:
        raise ValueError("payload_bytes must not be negative")
    deadline = time.monotonic() + seconds_limit
    body = os.urandom(payload_bytes)  # incompressible, fixed size

    publish_per_s = _phase_publish_only(amqp_uri, messages, body, deadline)
    publish_consume_per_s = _phase_publish_and_consume(amqp_uri, messages, body, deadline)
    return {
        "publish_per_s": round(publish_per_s, 1),
        "publish_consume_per_s": round(publish_consume_per_s, 1),
        "messages": messages,
        "payload_bytes": payload_bytes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--amqp-uri",
        default=os.environ.get("MEND_AMQP_URI", DEFAULT_AMQP_URI),
        help="broker URI (default: $MEND_AMQP_URI or %(default)s)",
    )
    parser.add_argument("--messages", type=int, default=20000, help="messages per phase")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)

    result = measure_ceiling(args.amqp_uri, messages=args.messages)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"kombu/py-amqp ceiling: {result['messages']} messages of "
            f"{result['payload_bytes']} bytes, durable queue, persistent, publisher confirms "
            f"(window {CONFIRM_WINDOW})"
        )
        print(f"  publish only (confirmed):            {result['publish_per_s']:>10,.0f} msg/s")
        print(
            f"  publish + consume (prefetch {PREFETCH}):    "
            f"{result['publish_consume_per_s']:>10,.0f} msg/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
