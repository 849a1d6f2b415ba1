"""Referrer status callbacks, signed as the Standard Webhooks specification says
(https://www.standardwebhooks.com), so an agency can check them with any of its libraries.

Each delivery carries three headers: webhook-id (the same on every retry of one message, so the
receiver can drop duplicates), webhook-timestamp (integer seconds since the epoch) and
webhook-signature: "v1," and the base64 HMAC-SHA256, keyed with the base64-decoded secret, of
"{id}.{timestamp}." followed by the exact body bytes. Several signatures may be sent, separated
by spaces, while a secret is being rotated.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import secrets
from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import urlsplit

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64     # the specification's bounds for a key
DEFAULT_TOLERANCE = 300                         # seconds either side of now
SIGNATURE_VERSION = "v1"


def new_secret() -> str:
    """A fresh signing secret: "whsec_" and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The key bytes of a secret (with or without its whsec_ prefix); ValueError if it is not one."""
    if not isinstance(secret, str):
        raise ValueError("a webhook secret is text")
    text = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(key)}")
    return key


def _check_id(msg_id: str) -> None:
    # The signed content is "{id}.{timestamp}.{body}": an id with a dot or a space in it could be
    # read more than one way, so ids are refused rather than trusted.
    if not isinstance(msg_id, str) or not msg_id or any(c in msg_id for c in ". \t\r\n") or not msg_id.isascii():
        raise ValueError("a webhook message id is non-empty ASCII without dots or spaces")


def _check_timestamp(timestamp: int) -> None:
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp < 0:
        raise ValueError("a webhook timestamp is whole seconds since the epoch")


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode("ascii") + bytes(body)
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature value: "v1,<base64 HMAC-SHA256>"."""
    _check_id(msg_id)
    _check_timestamp(timestamp)
    if not isinstance(body, (bytes, bytearray)):
        raise ValueError("the body is signed as bytes, exactly as sent")
    digest = _signature(secret_key(secret), msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION}," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers a delivery carries."""
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, msg_id, timestamp, body)}


def _seconds(now: datetime | int | float) -> int:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must carry its time zone")
        return int(now.timestamp())
    return int(now)


def verify(secret: str, received: Mapping[str, str], body: bytes, now: datetime | int | float,
           tolerance: int = DEFAULT_TOLERANCE) -> bool:
    """Does a delivery carry a valid, fresh signature by this secret? Header names are matched
    without regard to case; any one of several space-separated v1 signatures will do; a
    timestamp more than `tolerance` seconds from now (either way) fails, which bounds replay."""
    got = {str(k).lower(): v for k, v in received.items()}
    msg_id, stamp, signatures = got.get("webhook-id"), got.get("webhook-timestamp"), got.get("webhook-signature")
    if not isinstance(msg_id, str) or not isinstance(stamp, str) or not isinstance(signatures, str):
        return False
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        return False
    timestamp = int(stamp)
    if abs(_seconds(now) - timestamp) > tolerance:
        return False
    try:
        _check_id(msg_id)
        key = secret_key(secret)
    except ValueError:
        return False
    expected = _signature(key, msg_id, timestamp, bytes(body))
    ok = False
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            candidate = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Constant time, and every entry is compared so timing does not say which one matched.
        ok |= hmac.compare_digest(candidate, expected)
    return ok


# -- the body ------------------------------------------------------------------------------------
def message_id(dedupe_key: str) -> str:
    """The webhook-id for a message: derived from its dedupe key, so every retry of one message
    carries the same id and a receiver can drop duplicates."""
    return "msg_" + hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]


def payload(event_type: str, at: datetime, data: Mapping[str, Any]) -> bytes:
    """The body, in the specification's recommended shape: {"type", "timestamp", "data"}.
    Compact JSON with sorted keys: the bytes signed are the bytes sent."""
    if at.tzinfo is None:
        raise ValueError("at must carry its time zone")
    stamp = at.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    doc = {"type": event_type, "timestamp": stamp, "data": dict(data)}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def outcome(status_code: int) -> str:
    """What an endpoint's HTTP answer means for the message: any 2xx is "delivered"; 410 Gone
    is "failed" (the receiver asks us to stop, as the specification suggests); everything else,
    redirects included (we do not follow them), is "retry"."""
    if 200 <= status_code < 300:
        return "delivered"
    if status_code == 410:
        return "failed"
    return "retry"


def url_problems(url: str, *, allow_http: bool = False) -> list[str]:
    """What is wrong with an endpoint URL an agency registers. HTTPS only (plain HTTP only when
    allowed, for a test stack); no credentials in it; and not an address inside our own network
    written as an IP literal. A host name that resolves to one is for the HTTP adapter to refuse
    at connect time: this function does no DNS."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ["is not a valid URL"]
    problems = []
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        problems.append("must use https")
    if not parts.hostname:
        problems.append("must name a host")
    if parts.username or parts.password:
        problems.append("must not carry a user name or password")
    if parts.fragment:
        problems.append("must not have a fragment (#...)")
    if port == 0:
        problems.append("must not use port 0")
    if parts.hostname:
        try:
            ip = ipaddress.ip_address(parts.hostname)
        except ValueError:
            ip = None
        if ip is not None and not allow_http and not ip.is_global:
            problems.append("must not point at a private, loopback or link-local address")
        if ip is None and parts.hostname.lower() in ("localhost", "localhost.localdomain") and not allow_http:
            problems.append("must not point at this machine")
    if len(url) > 2000:
        problems.append("must be at most 2000 characters")
    return problems
