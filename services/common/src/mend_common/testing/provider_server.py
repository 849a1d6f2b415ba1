"""A local stand-in for the SMS and letter provider, for tests and benchmarks.

It speaks the provider API the notifications service uses (JSON over HTTP, bearer API key,
Idempotency-Key), keeps what it was sent, and fails on request:

    server = ProviderServer(api_key="test-key").start()
    server.fail_next(2, status=503)        # the next two requests get 503
    server.rate_limit(1, retry_after=3)    # the next one gets 429 with Retry-After: 3
    server.stall_next(1, seconds=5)        # the next one is handled, but its answer waits 5 s
    server.set_status(ref, "delivered")
    server.sms, server.letters             # what was accepted (each once, whatever the retries)
    server.stop()

Also runnable as a process (benchmarks):
    python -m mend_common.testing.provider_server --port N --api-key K [--record FILE]
prints "ready <port>" once listening, and appends one JSON line per accepted item to FILE.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import signal
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

STATUSES = ("sent", "delivered", "failed", "bounced")
_PHONE = re.compile(r"^\+?[0-9]{7,15}$")
_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$", re.IGNORECASE)
MAX_SMS_CHARS = 918          # six concatenated fragments
MAX_BODY_BYTES = 20 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# A small threaded HTTP server (shared with webhook_receiver)

class Reply:
    """What a LocalHttpServer answers to one request, after `delay` seconds."""

    def __init__(self, status: int, payload: Any = None, headers: dict[str, str] | None = None,
                 delay: float = 0.0):
        self.status = status
        self.delay = delay
        self.headers = dict(headers or {})
        if payload is None:
            self.body = b""
        elif isinstance(payload, bytes):
            self.body = payload
        else:
            self.body = json.dumps(payload).encode()
            self.headers.setdefault("Content-Type", "application/json")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"     # keep-alive, like a real API: clients reuse connections
    server_version = "mend-test"
    timeout = 30                      # an idle keep-alive connection is dropped after this

    def setup(self) -> None:
        super().setup()
        self.server.app._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.app._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:   # quiet: tests read the recorded requests
        pass

    def _serve(self) -> None:
        length = self.headers.get("Content-Length")
        if self.command in ("POST", "PUT", "PATCH") and length is None:
            reply = Reply(411, {"error": "Content-Length is required"})
        else:
            try:
                size = int(length or 0)
            except ValueError:
                size = -1
            if size < 0 or size > MAX_BODY_BYTES:
                reply = Reply(413, {"error": "request body too large"})
                self.close_connection = True
            else:
                body = self.rfile.read(size) if size else b""
                headers = {name.lower(): value for name, value in self.headers.items()}
                try:
                    reply = self.server.app.handle(self.command, self.path, headers, body)
                except Exception as error:   # a bug in the stand-in must show, not hang the client
                    reply = Reply(500, {"error": f"stand-in server error: {error!r}"})
        if reply.delay and self.server.app._stopping.wait(reply.delay):
            self.close_connection = True
            return                   # stopped while stalling: never answer
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if reply.body and self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class LocalHttpServer:
    """ThreadingHTTPServer on a thread. Subclasses implement handle(method, path, headers, body)
    -> Reply (headers have lower-case names). start() returns self; port 0 picks a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self.connections_opened = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self):
        self._stopping.clear()
        httpd = ThreadingHTTPServer((self.host, self.port), _Handler)
        httpd.daemon_threads = True
        httpd.app = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection (stalled answers are never sent)."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            open_sockets, self._open = list(self._open), set()
        for sock in open_sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5)
        self._httpd = self._thread = None

    def _track(self, sock: socket.socket, opened: bool) -> None:
        with self._lock:
            if opened:
                self._open.add(sock)
                self.connections_opened += 1
            else:
                self._open.discard(sock)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_until_signalled(server: LocalHttpServer | Any) -> None:
    """For `python -m ...`: print "ready <port>", serve until SIGTERM or SIGINT, stop cleanly."""
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    server.start()
    print(f"ready {server.port}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        server.stop()


class JsonLinesRecorder:
    """Appends one JSON object per line to a file and flushes, so another process can count."""

    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


# ---------------------------------------------------------------------------------------------
# The provider

class _Failure:
    def __init__(self, count: int, reply: Callable[[], Reply]):
        self.count = count
        self.reply = reply


class ProviderServer(LocalHttpServer):
    """Checks `Authorization: Bearer <api_key>` (401), validates the JSON (400 with an error),
    honours Idempotency-Key (the same key returns the first answer and is not sent again; reused
    with a different request: 422), keeps what it accepted (.sms, .letters) and answers
    GET /v1/messages/{id}. Order of checks: injected failure, auth, rate limit, route, validation,
    idempotency."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str = "test-provider-key",
                 on_accept: Callable[[dict], None] | None = None, keep_content: bool = True):
        super().__init__(host, port)
        self.api_key = api_key
        self.on_accept = on_accept
        self.keep_content = keep_content   # False (long benchmarks): drop SMS bodies and PDFs once checked
        self._sms: list[dict] = []
        self._letters: list[dict] = []
        self._by_id: dict[str, dict] = {}
        self._idempotent: dict[str, tuple[str, Reply]] = {}   # key -> (request fingerprint, reply)
        self._failures: list[_Failure] = []
        self._rate_limits: list[_Failure] = []
        self._stalls: list[list] = []     # [count, seconds]
        self.requests: list[tuple[str, str, int]] = []   # (method, path, status) of every request
        self.replays = 0                  # requests answered from the idempotency store

    # -- what it holds -------------------------------------------------------------------------

    @property
    def sms(self) -> list[dict]:
        with self._lock:
            return [dict(item) for item in self._sms]

    @property
    def letters(self) -> list[dict]:
        with self._lock:
            return [dict(item) for item in self._letters]

    def status_of(self, ref: str) -> str:
        with self._lock:
            return self._by_id[ref]["status"]

    # -- failure modes -------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 503, *, retry_after: float | None = None) -> None:
        headers = {"Retry-After": seconds_text(retry_after)} if retry_after is not None else {}
        with self._lock:
            self._failures.append(_Failure(n, lambda: Reply(status, {"error": f"injected failure {status}"}, headers)))

    def rate_limit(self, n: int = 1, retry_after: float = 1) -> None:
        with self._lock:
            self._rate_limits.append(_Failure(n, lambda: Reply(
                429, {"error": "too many requests"}, {"Retry-After": seconds_text(retry_after)})))

    def stall_next(self, n: int = 1, seconds: float = 60.0) -> None:
        """The next n requests are handled (an SMS is sent), but their answers wait `seconds`
        (or until stop()): the client times out not knowing whether it went through."""
        with self._lock:
            self._stalls.append([n, seconds])

    def set_status(self, ref: str, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        with self._lock:
            self._by_id[ref]["status"] = status

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()
            self._rate_limits.clear()
            self._stalls.clear()

    # -- requests ------------------------------------------------------------------------------

    @staticmethod
    def _take(queue: list) -> Any:
        while queue:
            head = queue[0]
            if head.count > 0:
                head.count -= 1
                return head
            queue.pop(0)
        return None

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        path = path.split("?", 1)[0]
        checked = self._check(method, path, body)     # pure: outside the lock
        with self._lock:
            reply = self._handle(method, path, headers, checked)
            while self._stalls and self._stalls[0][0] <= 0:
                self._stalls.pop(0)
            if self._stalls:
                self._stalls[0][0] -= 1
                reply.delay = self._stalls[0][1]
            self.requests.append((method, path, reply.status))
            return reply

    def _check(self, method: str, path: str, body: bytes) -> tuple[str | None, dict, str]:
        """(problem, item, request fingerprint) of a send; problem None when it is valid."""
        if method != "POST" or path not in ("/v1/sms", "/v1/letters"):
            return None, {}, ""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return "the body is not JSON", {}, ""
        if not isinstance(payload, dict):
            return "the body must be a JSON object", {}, ""
        problem, item = (_validate_sms if path == "/v1/sms" else _validate_letter)(payload)
        if problem is None and not self.keep_content:
            item = {k: (len(v) if k in ("body", "pdf") else v) for k, v in item.items()}
        return problem, item, f"{path} {json.dumps(payload, sort_keys=True)}"

    def _handle(self, method: str, path: str, headers: dict[str, str],
                checked: tuple[str | None, dict, str]) -> Reply:
        failure = self._take(self._failures)
        if failure is not None:
            return failure.reply()
        if headers.get("authorization", "") != f"Bearer {self.api_key}":
            return Reply(401, {"error": "missing or wrong API key"}, {"WWW-Authenticate": "Bearer"})
        limited = self._take(self._rate_limits)
        if limited is not None:
            return limited.reply()
        if method == "GET" and path.startswith("/v1/messages/"):
            item = self._by_id.get(path.removeprefix("/v1/messages/"))
            if item is None:
                return Reply(404, {"error": "no such message"})
            return Reply(200, {"id": item["id"], "type": item["type"], "status": item["status"],
                               "reference": item.get("reference")})
        if method != "POST" or path not in ("/v1/sms", "/v1/letters"):
            return Reply(404, {"error": f"no route {method} {path}"})
        problem, item, fingerprint = checked
        if problem:
            return Reply(400, {"error": problem})
        kind = "sms" if path == "/v1/sms" else "letter"
        item = dict(item)
        key = headers.get("idempotency-key")
        if key is not None and key in self._idempotent:
            first_fingerprint, first_reply = self._idempotent[key]
            if first_fingerprint != fingerprint:
                return Reply(422, {"error": "Idempotency-Key reused with a different request"})
            self.replays += 1
            return Reply(first_reply.status, first_reply.body, {**first_reply.headers, "Idempotent-Replayed": "true"})
        ref = f"{kind}_{uuid.uuid4().hex}"
        item.update(id=ref, type=kind, status="sent", idempotency_key=key, received_at=time.time())
        (self._sms if kind == "sms" else self._letters).append(item)
        self._by_id[ref] = item
        reply = Reply(201, {"id": ref, "status": "sent", "reference": item.get("reference")})
        if key is not None:
            self._idempotent[key] = (fingerprint, reply)
        if self.on_accept is not None:
            self.on_accept({"id": ref, "type": kind, "reference": item.get("reference"),
                            "idempotency_key": key, "received_at": item["received_at"]})
        return reply


def seconds_text(value: float) -> str:
    """A Retry-After value: whole seconds as an integer ("3"), else as given ("0.2")."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _reference(payload: dict) -> tuple[str | None, str | None]:
    reference = payload.get("reference")
    if reference is not None and (not isinstance(reference, str) or len(reference) > 255):
        return "reference must be a string of at most 255 characters", None
    return None, reference


def _validate_sms(payload: dict) -> tuple[str | None, dict]:
    to, body = payload.get("to"), payload.get("body")
    if not isinstance(to, str) or not _PHONE.match(to.replace(" ", "")):
        return "to must be a phone number (7 to 15 digits, optionally with a leading +)", {}
    if not isinstance(body, str) or not body.strip():
        return "body must be a non-empty string", {}
    if len(body) > MAX_SMS_CHARS:
        return f"body is longer than {MAX_SMS_CHARS} characters", {}
    problem, reference = _reference(payload)
    return problem, {"to": to, "body": body, "reference": reference}


def _validate_letter(payload: dict) -> tuple[str | None, dict]:
    lines, postcode, pdf_base64 = payload.get("address_lines"), payload.get("postcode"), payload.get("pdf_base64")
    if (not isinstance(lines, list) or not 2 <= len(lines) <= 6
            or not all(isinstance(line, str) and line.strip() and len(line) <= 80 for line in lines)):
        return "address_lines must be 2 to 6 non-empty strings of at most 80 characters", {}
    if not isinstance(postcode, str) or not _POSTCODE.match(postcode.strip()):
        return "postcode is not a UK postcode", {}
    if not isinstance(pdf_base64, str):
        return "pdf_base64 must be a base64 string", {}
    try:
        pdf = base64.b64decode(pdf_base64, validate=True)
    except (binascii.Error, ValueError):
        return "pdf_base64 is not valid base64", {}
    if not pdf.startswith(b"%PDF-"):
        return "pdf_base64 is not a PDF", {}
    problem, reference = _reference(payload)
    return problem, {"address_lines": list(lines), "postcode": postcode.strip(), "pdf": pdf, "reference": reference}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local SMS and letter provider for tests and benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="test-provider-key")
    parser.add_argument("--record", help="append one JSON line per accepted item to this file")
    args = parser.parse_args(argv)
    recorder = JsonLinesRecorder(args.record) if args.record else None
    server = ProviderServer(args.host, args.port, api_key=args.api_key, on_accept=recorder, keep_content=False)
    try:
        serve_until_signalled(server)
    finally:
        if recorder is not None:
            recorder.close()


if __name__ == "__main__":
    main(sys.argv[1:])
