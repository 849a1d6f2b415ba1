"""The notifications service's delivery channels: e-mail over SMTP, SMS and letters through the
provider's HTTP API, and signed webhooks to partner systems.

Every network call has a timeout. Every failure is a DeliveryError:
  - TemporaryFailure: try again later (after `retry_after` seconds when the other side said so).
    RateLimited is one. Connection errors and timeouts are temporary.
  - PermanentFailure: trying the same message again cannot help (the address is refused, the
    request is invalid, the API key is wrong, the receiver answered 410 Gone).

Sending twice must not deliver twice. The caller's message id travels as the e-mail's
Message-ID, as the provider's Idempotency-Key and as the webhook-id, so a retry after an ambiguous
failure (a timeout after the request went out) is recognised downstream.

Each adapter holds only its own connection; nothing here is global.
"""
from __future__ import annotations

import base64
import email.generator
import email.policy
import email.utils
import io
import ipaddress
import json
import math
import re
import smtplib
import socket
import ssl
import threading
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from types import MappingProxyType
from typing import Any, Mapping, Sequence
from urllib.parse import quote, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection

from ..domain.webhooks import sign as sign_webhook

__all__ = [
    "DeliveryError", "TemporaryFailure", "RateLimited", "PermanentFailure",
    "SmtpSender", "ProviderClient", "WebhookSender", "DELIVERY_STATUSES",
]

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


# ---------------------------------------------------------------------------------------------
# Failures

class DeliveryError(Exception):
    """A message could not be handed over. `code` is the SMTP reply code or the HTTP status,
    when the other side answered at all."""

    def __init__(self, message: str = "delivery failed", *, code: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code


class TemporaryFailure(DeliveryError):
    """Try again later; `retry_after` (seconds) is how long the other side asked us to wait."""

    def __init__(self, message: str = "temporary delivery failure", *, retry_after: float | None = None,
                 code: int | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class RateLimited(TemporaryFailure):
    """The other side answered 429 Too Many Requests."""


class PermanentFailure(DeliveryError):
    """Sending this message again cannot succeed."""


# ---------------------------------------------------------------------------------------------
# E-mail

_ATEXT_ID = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_RESERVED_HEADERS = frozenset({"message-id", "date", "from", "to", "subject", "mime-version",
                               "content-type", "content-transfer-encoding", "bcc"})


def _mail_error(error: smtplib.SMTPResponseException | tuple[int, Any], what: str) -> DeliveryError:
    """An SMTP reply to an exception: 5xx is permanent, anything else temporary."""
    if isinstance(error, tuple):
        code, text = error
    else:
        code, text = error.smtp_code, error.smtp_error
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    message = f"{what}: {code} {text}"
    if 500 <= code < 600:
        return PermanentFailure(message, code=code)
    return TemporaryFailure(message, code=code)


def _split_mime_type(mime_type: str) -> tuple[str, str, dict[str, str]]:
    """'text/calendar; method=REQUEST' -> ('text', 'calendar', {'method': 'REQUEST'})."""
    kind, *raw_params = [part.strip() for part in mime_type.split(";")]
    maintype, sep, subtype = kind.partition("/")
    if not sep or not maintype or not subtype:
        raise ValueError(f"not a MIME type: {mime_type!r}")
    params: dict[str, str] = {}
    for raw in raw_params:
        if raw:
            name, _, value = raw.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
    return maintype.lower(), subtype.lower(), params


class SmtpSender:
    """E-mail through one SMTP relay over ONE connection, kept open across sends (a fan-out of
    10,000 messages must not open 10,000 connections).

    A connection idle for more than `idle_check_seconds` is checked with NOOP before use; one the
    server closed is replaced. Sends are serialised by a lock: the sender is thread-safe, and a
    pool of workers that wants parallel connections uses one sender per worker.

    Failures: a 5xx reply (to the greeting, EHLO, AUTH, MAIL, RCPT or DATA) is a
    PermanentFailure; 4xx replies, connection errors, timeouts and TLS errors are
    TemporaryFailure. After a refused message the connection is kept (RSET), except after 421. If the server hangs up before the message data went out, the send is
    tried once more on a new connection; after that point it is not (it may have been
    delivered), and the caller's retry carries the same Message-ID.
    """

    def __init__(self, host: str, port: int, *, sender: str, timeout: float = 10.0, starttls: bool = False,
                 username: str | None = None, password: str | None = None,
                 tls_context: ssl.SSLContext | None = None, local_hostname: str | None = None,
                 idle_check_seconds: float = 30.0):
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout = timeout
        self.starttls = starttls
        self.username = username
        self.password = password
        self.tls_context = tls_context
        # smtplib would otherwise ask DNS for our FQDN (socket.getfqdn), a lookup with no timeout.
        self.local_hostname = local_hostname or socket.gethostname() or "localhost"
        self.idle_check_seconds = idle_check_seconds
        self._lock = threading.Lock()
        self._connection: smtplib.SMTP | None = None
        self._last_used = 0.0
        self.connections_opened = 0   # for tests and metrics

    # -- the message ---------------------------------------------------------------------------

    def build_message(self, *, message_id: str, to: str, subject: str, body: str,
                      attachments: Sequence[tuple[str, str, bytes]] = (),
                      headers: Mapping[str, str] = _NO_HEADERS) -> EmailMessage:
        """The message send() would send. Raises PermanentFailure if it cannot be built (a bad
        address, a line break in a header, a reserved header in `headers`)."""
        return self._build(message_id, to, subject, body, attachments, headers)[0]

    def _build(self, message_id: str, to: str, subject: str, body: str,
               attachments: Sequence[tuple[str, str, bytes]],
               headers: Mapping[str, str]) -> tuple[EmailMessage, str]:
        if not _ATEXT_ID.match(message_id or ""):
            raise PermanentFailure(f"message id {message_id!r} cannot be used in a Message-ID")
        envelope_to = self._envelope_address(to)
        try:
            msg = EmailMessage(policy=email.policy.SMTP)
            msg["Message-ID"] = f"<{message_id}@mend>"
            msg["Date"] = email.utils.format_datetime(datetime.now(timezone.utc))
            msg["From"] = self.sender
            msg["To"] = to
            msg["Subject"] = subject
            for name, value in headers.items():
                if name.lower() in _RESERVED_HEADERS:
                    raise ValueError(f"header {name!r} is set by the sender")
                msg[name] = value
            msg.set_content(body)
            for filename, mime_type, data in attachments:
                maintype, subtype, params = _split_mime_type(mime_type)
                if maintype == "text":
                    params.setdefault("charset", "utf-8")
                msg.add_attachment(bytes(data), maintype=maintype, subtype=subtype, filename=filename,
                                   params=params)
        except (ValueError, TypeError) as error:
            raise PermanentFailure(f"the message cannot be built: {error}") from error
        return msg, envelope_to

    @staticmethod
    def _envelope_address(to: str) -> str:
        _, address = email.utils.parseaddr(to or "")
        local, at, domain = address.rpartition("@")
        if not at or not local or not domain or any(c.isspace() for c in address) or "\x00" in to:
            raise PermanentFailure(f"not an e-mail address: {to!r}")
        return address

    # -- the connection ------------------------------------------------------------------------

    def _connect(self) -> smtplib.SMTP:
        try:
            # Given the host here (not to connect()), smtplib checks the TLS certificate against it.
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout, local_hostname=self.local_hostname)
        except smtplib.SMTPResponseException as error:   # the greeting was not 220
            raise _mail_error(error, f"SMTP server {self.host}:{self.port} refused the session") from error
        except (smtplib.SMTPException, OSError) as error:
            raise TemporaryFailure(f"cannot connect to the SMTP server {self.host}:{self.port}: {error!r}") from error
        try:
            conn.ehlo_or_helo_if_needed()
            if self.starttls:
                conn.starttls(context=self.tls_context or ssl.create_default_context())
                conn.ehlo()
            if self.username is not None:
                conn.login(self.username, self.password or "")
        except smtplib.SMTPResponseException as error:
            conn.close()
            raise _mail_error(error, f"SMTP session with {self.host}:{self.port} refused") from error
        except (smtplib.SMTPException, OSError) as error:   # OSError covers timeouts and TLS errors
            conn.close()
            raise TemporaryFailure(f"cannot open an SMTP session with {self.host}:{self.port}: {error!r}") from error
        self.connections_opened += 1
        self._last_used = time.monotonic()
        return conn

    def _usable_connection(self) -> smtplib.SMTP:
        conn = self._connection
        if conn is not None and time.monotonic() - self._last_used > self.idle_check_seconds:
            try:
                alive = conn.noop()[0] == 250
            except (smtplib.SMTPException, OSError):
                alive = False
            if not alive:
                self._discard()
                conn = None
        if conn is None:
            conn = self._connection = self._connect()
        return conn

    def _discard(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except OSError:
                pass
            self._connection = None

    def _reset(self, conn: smtplib.SMTP, code: int) -> None:
        """After a refused transaction: RSET to keep the connection, or drop it (421, errors)."""
        if code == 421:
            self._discard()
            return
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            self._discard()

    # -- sending -------------------------------------------------------------------------------

    def send(self, *, message_id: str, to: str, subject: str, body: str,
             attachments: Sequence[tuple[str, str, bytes]] = (),
             headers: Mapping[str, str] = _NO_HEADERS) -> str:
        """Send one plain-text e-mail with attachments ((filename, mime type, bytes), e.g.
        ("invite.ics", "text/calendar; method=REQUEST", ics)). Returns its Message-ID header,
        "<message_id@mend>"."""
        msg, envelope_to = self._build(message_id, to, subject, body, attachments, headers)
        international = not (self.sender.isascii() and envelope_to.isascii())
        policy = msg.policy.clone(utf8=True) if international else msg.policy
        buffer = io.BytesIO()
        email.generator.BytesGenerator(buffer, policy=policy).flatten(msg, linesep="\r\n")
        payload = buffer.getvalue()
        with self._lock:
            for attempt in (1, 2):
                conn = self._usable_connection()
                data_sent = False
                try:
                    options = []
                    if conn.does_esmtp and conn.has_extn("size"):
                        options.append(f"SIZE={len(payload)}")
                    if international:
                        if not conn.has_extn("smtputf8"):
                            raise PermanentFailure("the SMTP server cannot take non-ASCII addresses (no SMTPUTF8)")
                        options += ["SMTPUTF8", "BODY=8BITMIME"]
                    code, text = conn.mail(self.sender, options)
                    if code != 250:
                        self._reset(conn, code)
                        raise _mail_error((code, text), f"sender {self.sender} refused")
                    code, text = conn.rcpt(envelope_to)
                    if code not in (250, 251):
                        self._reset(conn, code)
                        raise _mail_error((code, text), f"recipient {envelope_to} refused")
                    data_sent = True
                    code, text = conn.data(payload)
                    if code != 250:
                        self._reset(conn, code)
                        raise _mail_error((code, text), "message refused")
                except smtplib.SMTPServerDisconnected as error:
                    self._discard()
                    if attempt == 1 and not data_sent:
                        continue   # an idle connection the server had closed: once more on a new one
                    raise TemporaryFailure(f"the SMTP server closed the connection: {error}") from error
                except smtplib.SMTPResponseException as error:   # DATA itself refused (SMTPDataError)
                    self._reset(conn, error.smtp_code)
                    raise _mail_error(error, "message refused") from error
                except (smtplib.SMTPException, OSError) as error:
                    self._discard()
                    raise TemporaryFailure(f"SMTP error: {error!r}") from error
                self._last_used = time.monotonic()
                return msg["Message-ID"]
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                try:
                    self._connection.quit()
                except (smtplib.SMTPException, OSError):
                    pass
                self._discard()

    def __enter__(self) -> "SmtpSender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# HTTP helpers

def _retry_after(response: requests.Response) -> float | None:
    """Retry-After as seconds (delay-seconds or an HTTP date); None if absent or unreadable."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _error_text(content: bytes, reason: str = "") -> str:
    """The other side's explanation: a JSON "error"/"message"/"detail", else the start of the text."""
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        for key in ("error", "message", "detail", "errors"):
            value = data.get(key)
            if value:
                return value if isinstance(value, str) else json.dumps(value)[:500]
    text = content[:500].decode("utf-8", "replace").strip()
    return text or reason


def _classify(status: int, retry_after: float | None, text: str, what: str) -> DeliveryError:
    """A non-2xx HTTP status to the failure it means (shared by the provider and webhooks)."""
    message = f"{what}: HTTP {status}: {text}"
    if status == 429:
        return RateLimited(message, retry_after=retry_after, code=status)
    if status >= 500 or status in (408, 425):
        return TemporaryFailure(message, retry_after=retry_after, code=status)
    return PermanentFailure(message, code=status)


# ---------------------------------------------------------------------------------------------
# SMS and letters

DELIVERY_STATUSES = ("sent", "delivered", "failed", "bounced")
_PROVIDER_STATUS = {
    "sent": "sent", "delivered": "delivered", "failed": "failed", "bounced": "bounced",
    "accepted": "sent", "created": "sent", "queued": "sent", "pending": "sent", "sending": "sent",
    "printing": "sent", "posted": "sent", "received": "delivered", "returned": "bounced",
    "returned-letter": "bounced", "permanent-failure": "failed", "technical-failure": "failed",
    "temporary-failure": "failed", "cancelled": "failed", "rejected": "failed",
}


class ProviderClient:
    """The SMS and letter provider's JSON API. Each send carries `Idempotency-Key: <message_id>`,
    so a retried request (after a timeout, when the first may have gone through) is not sent
    twice by the provider."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0,
                 session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self._session = session if session is not None else requests.Session()
        self._owns_session = session is None

    def _request(self, method: str, path: str, *, payload: dict | None = None,
                 idempotency_key: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        what = f"{method} {path}"
        try:
            response = self._session.request(method, self.base_url + path, json=payload, headers=headers,
                                             timeout=(self.timeout, self.timeout), allow_redirects=False)
        except requests.Timeout as error:
            raise TemporaryFailure(f"{what}: the provider did not answer within {self.timeout:g}s") from error
        except requests.RequestException as error:
            raise TemporaryFailure(f"{what}: cannot reach the provider: {error!r}") from error
        if not 200 <= response.status_code < 300:
            raise _classify(response.status_code, _retry_after(response),
                            _error_text(response.content, response.reason or ""), what)
        try:
            data = response.json()
        except ValueError as error:   # accepted, but unreadable: the idempotent retry gets the answer again
            raise TemporaryFailure(f"{what}: the provider's answer is not JSON",
                                   code=response.status_code) from error
        if not isinstance(data, dict):
            raise TemporaryFailure(f"{what}: the provider's answer is not a JSON object", code=response.status_code)
        return data

    def _submit(self, path: str, message_id: str, payload: dict) -> str:
        data = self._request("POST", path, payload=payload, idempotency_key=message_id)
        ref = data.get("id")
        if not isinstance(ref, str) or not ref:
            raise TemporaryFailure(f"POST {path}: the provider's answer has no id")
        return ref

    def send_sms(self, *, message_id: str, to: str, body: str) -> str:
        """Returns the provider's reference for the message."""
        return self._submit("/v1/sms", message_id, {"to": to, "body": body, "reference": message_id})

    def send_letter(self, *, message_id: str, address_lines: Sequence[str], postcode: str, pdf: bytes) -> str:
        """Returns the provider's reference for the letter."""
        return self._submit("/v1/letters", message_id, {
            "address_lines": list(address_lines), "postcode": postcode,
            "pdf_base64": base64.b64encode(bytes(pdf)).decode("ascii"), "reference": message_id})

    def status(self, provider_ref: str) -> str:
        """"sent", "delivered", "failed" or "bounced". An unknown reference is a
        PermanentFailure; a status this client does not know is a TemporaryFailure (ask later)."""
        data = self._request("GET", f"/v1/messages/{quote(provider_ref, safe='')}")
        raw = str(data.get("status", "")).strip().lower()
        status = _PROVIDER_STATUS.get(raw)
        if status is None:
            raise TemporaryFailure(f"the provider reports an unknown status {raw!r} for {provider_ref}")
        return status

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> "ProviderClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Webhooks

class _RefusedAddress(Exception):
    """The endpoint's host resolved to an address inside our own network."""


def _check_peer(sock: socket.socket) -> socket.socket:
    address = ipaddress.ip_address(sock.getpeername()[0])
    if not address.is_global:
        sock.close()
        raise _RefusedAddress(f"{address} is not a public address")
    return sock


class _PublicHTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _check_peer(super()._new_conn())


class _PublicHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _check_peer(super()._new_conn())


class _PublicHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _PublicHTTPConnection


class _PublicHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _PublicHTTPSConnection


class _PublicOnlyAdapter(requests.adapters.HTTPAdapter):
    """Checks the address each new connection actually reached (after DNS, so a name that
    resolves, or re-resolves, to a private address is caught) before anything is sent."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _PublicHTTPConnectionPool,
                                                   "https": _PublicHTTPSConnectionPool}


class WebhookSender:
    """Signed webhooks (Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature;
    signed by domain.webhooks.sign).

    Redirects are not followed (a 3xx is a PermanentFailure: fix the endpoint's URL); only the
    first 2 KiB of a receiver's answer is read. With `public_only` (production), a connection
    that reaches a loopback, private or link-local address is closed before anything is sent,
    and the message fails permanently: agencies' URLs must not reach inside our network. It is
    off by default because tests and the local stack post to 127.0.0.1; proxies from the
    environment are not used when it is on."""

    MAX_ANSWER_BYTES = 2048

    def __init__(self, *, timeout: float = 10.0, session: requests.Session | None = None,
                 public_only: bool = False):
        self.timeout = timeout
        self._session = session if session is not None else requests.Session()
        self._owns_session = session is None
        self.public_only = public_only
        if public_only:
            self._session.trust_env = False      # an environment proxy would be the address checked
            for prefix in ("http://", "https://"):
                self._session.mount(prefix, _PublicOnlyAdapter())

    def post(self, url: str, *, secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> int:
        """POST body to url, signed with secret. Returns the receiver's (2xx) status."""
        ts = int(time.time()) if timestamp is None else int(timestamp)
        try:
            signature = sign_webhook(secret, msg_id, ts, bytes(body))
        except ValueError as error:   # a secret or message id that can never be signed
            raise PermanentFailure(f"webhook {msg_id}: {error}") from error
        headers = {"Content-Type": "application/json", "webhook-id": msg_id,
                   "webhook-timestamp": str(ts), "webhook-signature": signature}
        where = urlsplit(url)
        what = f"webhook {msg_id} to {where.scheme}://{where.netloc}{where.path}"   # no query: it may hold a token
        try:
            with self._session.post(url, data=body, headers=headers, timeout=(self.timeout, self.timeout),
                                    allow_redirects=False, stream=True) as response:
                status = response.status_code
                # Read (a little of) the answer: an answer read to its end lets the connection be reused.
                answer = response.raw.read(self.MAX_ANSWER_BYTES, decode_content=True) or b""
                retry_after = _retry_after(response)
                reason = response.reason or ""
        except _RefusedAddress as error:
            raise PermanentFailure(f"{what}: refused to connect: {error}") from error
        except requests.Timeout as error:
            raise TemporaryFailure(f"{what}: no answer within {self.timeout:g}s") from error
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            if isinstance(error, (urllib3.exceptions.TimeoutError, TimeoutError)):
                raise TemporaryFailure(f"{what}: no answer within {self.timeout:g}s") from error
            raise TemporaryFailure(f"{what}: cannot reach the receiver: {error!r}") from error
        if 200 <= status < 300:
            return status
        if status == 410:
            raise PermanentFailure(f"{what}: HTTP 410: the receiver asks us to stop sending", code=410)
        raise _classify(status, retry_after, _error_text(answer, reason), what)

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> "WebhookSender":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
