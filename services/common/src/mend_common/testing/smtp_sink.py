"""A local SMTP server (aiosmtpd) that keeps every message it accepts, for tests and benchmarks.

    sink = SmtpSink().start()                  # port 0: a free port, see sink.port
    ... send to 127.0.0.1:sink.port ...
    sink.wait_for(3, timeout=5)                # the parsed EmailMessages
    sink.message_ids(); sink.connections       # Message-ID headers; SMTP sessions opened so far
    sink.envelopes; sink.noops                 # (MAIL FROM, [RCPT TO]) per message; NOOPs received
    sink.fail_next(2, code=451)                # the next two messages are refused at DATA with 451
    sink.reject_recipient("x@example.org", 550)
    sink.hang_up_next(1, stage="data")         # keep the next message, then hang up without a reply
    sink.drop_connections()                    # the server hangs up on every open session
    sink.stop()

Also runnable as a process (benchmarks):
    python -m mend_common.testing.smtp_sink --port N --record FILE
prints "ready <port>" once listening, and appends one JSON line per accepted message
({"message_id", "to", "subject", "received_at"}) and flushes, so another process can count
messages and duplicates. SIGTERM or SIGINT stops it.
"""
from __future__ import annotations

import argparse
import email.policy
import logging
import signal
import socket
import ssl
import sys
import threading
import time
import weakref
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Callable

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

STAGES = ("mail", "rcpt", "data")


class _BoundController(Controller):
    """aiosmtpd's Controller serving on a socket bound beforehand, so port 0 works (the stock
    one connects to its port to check it is up, which needs the port number in advance)."""

    def __init__(self, handler, sock: socket.socket, **kwargs):
        host, port = sock.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._sock = sock

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class _Handler:
    """aiosmtpd handler hooks; all state lives in the SmtpSink."""

    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.sink._greeted(server)
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        self.sink._greeted(server)
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_NOOP(self, server, session, envelope, arg):
        with self.sink._lock:
            self.sink._noops += 1
        return "250 2.0.0 OK"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        refusal = self.sink._injected("mail", server)
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = self.sink._recipient_refusal(address) or self.sink._injected("rcpt", server)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        refusal = self.sink._injected("data", server, envelope)
        if refusal:
            return refusal
        self.sink._accept(envelope.original_content or envelope.content, envelope.mail_from, list(envelope.rcpt_tos))
        return "250 2.0.0 OK: queued"


class SmtpSink:
    """Accepts mail for anyone and keeps it (.messages, thread-safe). `keep_messages=False`
    (long benchmarks) keeps nothing but counts and calls `on_message(msg, mail_from, rcpt_tos,
    received_at)`. With `tls_context` it offers STARTTLS; with `credentials` ({user: password})
    it requires AUTH (over TLS when it has a tls_context)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", *, keep_messages: bool = True,
                 on_message: Callable[[EmailMessage, str, list[str], float], None] | None = None,
                 tls_context: ssl.SSLContext | None = None, credentials: dict[str, str] | None = None,
                 server_hostname: str = "mend-smtp-sink"):
        self.host = host
        self.port = port
        self.keep_messages = keep_messages
        self.on_message = on_message
        self.tls_context = tls_context
        self.credentials = dict(credentials) if credentials else None
        self.server_hostname = server_hostname
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._messages: list[EmailMessage] = []
        self._envelopes: list[tuple[str, list[str]]] = []
        self._accepted = 0
        self._connections = 0
        self._noops = 0
        self._live = weakref.WeakSet()
        self._failures: list[list] = []          # [count, code, stage]
        self._rejected: dict[str, int] = {}      # lower-case address -> code
        self._controller: _BoundController | None = None
        self._parser = BytesParser(policy=email.policy.default)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> "SmtpSink":
        if self._controller is not None:
            raise RuntimeError("the SMTP sink is already running")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        kwargs: dict = {"server_hostname": self.server_hostname, "ready_timeout": 10.0}
        if self.tls_context is not None:
            kwargs.update(tls_context=self.tls_context, require_starttls=False)
        if self.credentials is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=self.tls_context is not None)
        controller = _BoundController(_Handler(self), sock, **kwargs)
        try:
            controller.start()
        except BaseException:
            sock.close()
            raise
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what arrived --------------------------------------------------------------------------

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def envelopes(self) -> list[tuple[str, list[str]]]:
        """(MAIL FROM, [RCPT TO]) of each accepted message."""
        with self._lock:
            return [(sender, list(rcpts)) for sender, rcpts in self._envelopes]

    @property
    def accepted(self) -> int:
        """Messages accepted so far (counted even when keep_messages is False)."""
        with self._lock:
            return self._accepted

    @property
    def connections(self) -> int:
        """SMTP sessions opened so far (connections that said EHLO or HELO)."""
        with self._lock:
            return self._connections

    @property
    def noops(self) -> int:
        """NOOP commands received so far (clients checking an idle connection)."""
        with self._lock:
            return self._noops

    def message_ids(self) -> list[str]:
        """The Message-ID header of each kept message, in arrival order (duplicates included)."""
        return [str(m.get("Message-ID", "")) for m in self.messages]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Wait until `count` messages were accepted; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while self._accepted < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self._accepted} of {count} messages arrived within {timeout:g}s")
                self._arrived.wait(remaining)
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._envelopes.clear()
            self._accepted = 0

    # -- failure injection ---------------------------------------------------------------------

    def fail_next(self, n: int = 1, code: int = 451, *, stage: str = "data") -> None:
        """Refuse the next n messages with `code` at `stage` ("mail", "rcpt" or "data")."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}")
        with self._lock:
            self._failures.append([n, code, stage])

    def hang_up_next(self, n: int = 1, *, stage: str = "data") -> None:
        """At `stage` of the next n messages, close the connection without a reply. At "data"
        the message is kept first: the client cannot tell whether it was delivered."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}")
        with self._lock:
            self._failures.append([n, None, stage])

    def reject_recipient(self, address: str, code: int = 550) -> None:
        """Refuse RCPT TO this address (until allow_recipient)."""
        with self._lock:
            self._rejected[address.lower()] = code

    def allow_recipient(self, address: str) -> None:
        with self._lock:
            self._rejected.pop(address.lower(), None)

    def drop_connections(self) -> None:
        """Hang up on every open session, as a server does with idle connections."""
        controller = self._controller
        if controller is None:
            return
        with self._lock:
            servers = list(self._live)
        done = threading.Event()

        def close_all():
            for server in servers:
                if server.transport is not None:
                    server.transport.close()
            done.set()
        controller.loop.call_soon_threadsafe(close_all)
        done.wait(5)

    # -- called by the handler (on the server's thread) ------------------------------------------

    def _greeted(self, server) -> None:
        with self._lock:
            if server not in self._live:    # a second EHLO (after STARTTLS) is the same session
                self._live.add(server)
                self._connections += 1

    def _injected(self, stage: str, server, envelope=None) -> str | None:
        """The reply of an injected failure at this stage, or None. A hang-up closes the
        connection instead of replying (at DATA, after keeping the message)."""
        with self._lock:
            while self._failures and self._failures[0][0] <= 0:
                self._failures.pop(0)
            if not self._failures or self._failures[0][2] != stage:
                return None
            failure = self._failures[0]
            failure[0] -= 1
            code = failure[1]
        if code is None:
            if envelope is not None:
                self._accept(envelope.original_content or envelope.content, envelope.mail_from,
                             list(envelope.rcpt_tos))
            server.transport.close()
            return "421 4.4.2 closing"     # never arrives: the transport is closed
        return f"{code} {str(code)[0]}.3.0 injected failure"

    def _recipient_refusal(self, address: str) -> str | None:
        with self._lock:
            code = self._rejected.get(address.lower())
        if code is None:
            return None
        return f"{code} {str(code)[0]}.1.1 <{address}>: recipient refused"

    def _accept(self, content: bytes, mail_from: str, rcpt_tos: list[str]) -> None:
        msg = self._parser.parsebytes(content, headersonly=not self.keep_messages)
        received_at = time.time()
        with self._arrived:
            if self.keep_messages:
                self._messages.append(msg)
                self._envelopes.append((mail_from, rcpt_tos))
            self._accepted += 1
            self._arrived.notify_all()
        if self.on_message is not None:
            self.on_message(msg, mail_from, rcpt_tos, received_at)

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.credentials is not None:
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if login in self.credentials and self.credentials[login] == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


def main(argv: list[str] | None = None) -> None:
    from .provider_server import JsonLinesRecorder

    parser = argparse.ArgumentParser(description="A local SMTP server that records what it accepts.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", help="append one JSON line per accepted message to this file")
    args = parser.parse_args(argv)
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    recorder = JsonLinesRecorder(args.record) if args.record else None

    def on_message(msg: EmailMessage, mail_from: str, rcpt_tos: list[str], received_at: float) -> None:
        if recorder is not None:
            recorder({"message_id": str(msg.get("Message-ID", "")), "to": ", ".join(rcpt_tos),
                      "subject": str(msg.get("Subject", "")), "received_at": received_at})

    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    sink = SmtpSink(args.port, args.host, keep_messages=False, on_message=on_message).start()
    print(f"ready {sink.port}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        sink.stop()
        if recorder is not None:
            recorder.close()


if __name__ == "__main__":
    main(sys.argv[1:])
