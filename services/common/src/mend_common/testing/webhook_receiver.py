"""A local webhook receiver for tests and benchmarks: records every request, answers 200 unless
told otherwise, and checks Standard Webhooks signatures with its own implementation (so a test
does not verify the sender's signing with the sender's code).

    receiver = WebhookReceiver().start()
    post to receiver.url (any path is accepted)
    receiver.fail_next(2, status=500); receiver.gone()   # 410 from now on; recover() undoes it
    receiver.requests                  # [(headers, body, path, status, received_at)], headers lower-case
    receiver.verified(secret)          # bodies whose signature verifies with secret
    receiver.stop()

Also runnable as a process (benchmarks):
    python -m mend_common.testing.webhook_receiver --port N [--secret S] [--record FILE]
prints "ready <port>" once listening; appends one JSON line per request answered 2xx
({"webhook_id", "verified", "received_at", "path"}).
"""
from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import sys
import threading
import time
from typing import Callable, Mapping, NamedTuple

from .provider_server import JsonLinesRecorder, LocalHttpServer, Reply, seconds_text, serve_until_signalled


class ReceivedWebhook(NamedTuple):
    headers: dict[str, str]   # lower-case names
    body: bytes
    path: str
    status: int               # what the receiver answered
    received_at: float


def verify_signature(secret: str, headers: Mapping[str, str], body: bytes, *,
                     tolerance: float | None = None, now: float | None = None) -> bool:
    """Standard Webhooks: one of the space-separated "v1,<base64>" signatures in webhook-signature
    is base64(HMAC-SHA256(base64decode(secret without "whsec_"), "{id}.{timestamp}.{body}")).
    With `tolerance`, the timestamp must also be within that many seconds of now."""
    headers = {name.lower(): value for name, value in headers.items()}
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        return False
    try:
        sent_at = int(timestamp)
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (ValueError, binascii.Error):
        return False
    if tolerance is not None and abs((time.time() if now is None else now) - sent_at) > tolerance:
        return False
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest())
    for candidate in signatures.split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return True
    return False


class WebhookReceiver(LocalHttpServer):
    """Answers 200 to any POST, unless fail_next() or gone() says otherwise."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 on_accept: Callable[[ReceivedWebhook], None] | None = None, keep_bodies: bool = True):
        super().__init__(host, port)
        self.on_accept = on_accept
        self.keep_bodies = keep_bodies
        self._requests: list[ReceivedWebhook] = []
        self._failures: list[list] = []   # [count, status, retry_after]
        self._stalls: list[list] = []     # [count, seconds]
        self._gone = False
        self._arrived = threading.Condition(self._lock)

    @property
    def url(self) -> str:
        return f"{self.base_url}/webhook"

    # -- behaviour -----------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500, *, retry_after: float | None = None) -> None:
        with self._lock:
            self._failures.append([n, status, retry_after])

    def stall_next(self, n: int = 1, seconds: float = 60.0) -> None:
        """The next n requests are recorded, but answered only after `seconds` (or never, if
        the receiver stops first)."""
        with self._lock:
            self._stalls.append([n, seconds])

    def gone(self) -> None:
        """From now on answer 410 Gone: the endpoint asks the sender to stop."""
        with self._lock:
            self._gone = True

    def recover(self) -> None:
        with self._lock:
            self._gone = False
            self._failures.clear()
            self._stalls.clear()

    # -- what arrived --------------------------------------------------------------------------

    @property
    def requests(self) -> list[ReceivedWebhook]:
        with self._lock:
            return list(self._requests)

    def accepted(self) -> list[ReceivedWebhook]:
        """The requests answered 2xx."""
        return [r for r in self.requests if 200 <= r.status < 300]

    def verified(self, secret: str, *, tolerance: float | None = None) -> list[bytes]:
        """Bodies of the requests (whatever they were answered) whose signature verifies."""
        return [r.body for r in self.requests if verify_signature(secret, r.headers, r.body, tolerance=tolerance)]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedWebhook]:
        """Wait until `count` requests have arrived; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self._requests)} of {count} webhooks arrived within {timeout:g}s")
                self._arrived.wait(remaining)
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- requests ------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if method != "POST":
            return Reply(405, {"error": "webhooks are POSTed"}, {"Allow": "POST"})
        with self._lock:
            reply = Reply(200, {"ok": True})
            while self._failures and self._failures[0][0] <= 0:
                self._failures.pop(0)
            if self._gone:
                reply = Reply(410, {"error": "this endpoint is gone; stop sending"})
            elif self._failures:
                failure = self._failures[0]
                failure[0] -= 1
                retry = {"Retry-After": seconds_text(failure[2])} if failure[2] is not None else {}
                reply = Reply(failure[1], {"error": f"injected failure {failure[1]}"}, retry)
            while self._stalls and self._stalls[0][0] <= 0:
                self._stalls.pop(0)
            if self._stalls:
                self._stalls[0][0] -= 1
                reply.delay = self._stalls[0][1]
            record = ReceivedWebhook(headers, body if self.keep_bodies else b"", path, reply.status, time.time())
            self._requests.append(record)
            self._arrived.notify_all()
        if self.on_accept is not None and 200 <= reply.status < 300:
            self.on_accept(ReceivedWebhook(headers, body, path, reply.status, record.received_at))
        return reply


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local webhook receiver for tests and benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", help="verify each request's signature with this secret")
    parser.add_argument("--record", help="append one JSON line per accepted request to this file")
    args = parser.parse_args(argv)
    recorder = JsonLinesRecorder(args.record) if args.record else None

    def on_accept(received: ReceivedWebhook) -> None:
        if recorder is not None:
            recorder({"webhook_id": received.headers.get("webhook-id"), "path": received.path,
                      "received_at": received.received_at,
                      "verified": verify_signature(args.secret, received.headers, received.body)
                      if args.secret else None})

    server = WebhookReceiver(args.host, args.port, on_accept=on_accept, keep_bodies=False)
    try:
        serve_until_signalled(server)
    finally:
        if recorder is not None:
            recorder.close()


if __name__ == "__main__":
    main(sys.argv[1:])
