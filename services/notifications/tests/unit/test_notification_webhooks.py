"""Standard Webhooks signatures: the specification's published vector, an independent
computation, and verification that any change to what was signed fails."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notification_examples import PROPERTY, utc
from mend_notifications.domain import webhooks as W

# The test vector published with the Standard Webhooks specification (and Svix's libraries).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def independent_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The scheme as the specification words it, written out here without the module."""
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, msg_id.encode() + b"." + str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def test_the_specifications_vector():
    assert W.sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert independent_signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    received = {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TIMESTAMP), "webhook-signature": SPEC_SIGNATURE}
    assert W.verify(SPEC_SECRET, received, SPEC_BODY, now=SPEC_TIMESTAMP)
    assert W.headers(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == received


def test_a_new_secret_is_32_random_bytes_behind_the_prefix():
    secrets_made = {W.new_secret() for _ in range(20)}
    assert len(secrets_made) == 20
    for s in secrets_made:
        assert s.startswith("whsec_") and len(base64.b64decode(s[6:], validate=True)) == 32
        assert W.secret_key(s) == base64.b64decode(s[6:])


@pytest.mark.parametrize("secret", ["whsec_not base64!", "whsec_c2hvcnQ=", "whsec_" + "A" * 200, "", 42])
def test_what_is_not_a_secret_is_refused(secret):
    with pytest.raises(ValueError):
        W.secret_key(secret)


def test_a_secret_without_its_prefix_is_the_same_key():
    assert W.secret_key(SPEC_SECRET[6:]) == W.secret_key(SPEC_SECRET)


secret_st = st.binary(min_size=24, max_size=64).map(lambda b: "whsec_" + base64.b64encode(b).decode())
id_st = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"), min_size=1,
                max_size=40)
stamp_st = st.integers(0, 4_000_000_000)


@PROPERTY
@given(secret_st, id_st, stamp_st, st.binary(max_size=300))
def test_signatures_match_an_independent_computation_and_verify(secret, msg_id, timestamp, body):
    signature = W.sign(secret, msg_id, timestamp, body)
    assert signature == independent_signature(secret, msg_id, timestamp, body)
    assert W.verify(secret, W.headers(secret, msg_id, timestamp, body), body, now=timestamp)


@PROPERTY
@given(secret_st, id_st, stamp_st, st.binary(min_size=1, max_size=300), st.data())
def test_any_single_byte_changed_in_the_body_fails(secret, msg_id, timestamp, body, data):
    sent = W.headers(secret, msg_id, timestamp, body)
    i = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = body[:i] + bytes([body[i] ^ flip]) + body[i + 1:]
    assert not W.verify(secret, sent, tampered, now=timestamp)
    # So does a byte added or removed.
    assert not W.verify(secret, sent, body + b" ", now=timestamp)
    assert not W.verify(secret, sent, body[:-1], now=timestamp)


@PROPERTY
@given(secret_st, id_st, stamp_st, st.binary(max_size=100), st.data())
def test_any_single_byte_changed_in_the_signature_id_or_timestamp_fails(secret, msg_id, timestamp, body, data):
    sent = W.headers(secret, msg_id, timestamp, body)
    mac = bytearray(base64.b64decode(sent["webhook-signature"][3:]))
    i = data.draw(st.integers(0, len(mac) - 1))
    mac[i] ^= data.draw(st.integers(1, 255))
    assert not W.verify(secret, sent | {"webhook-signature": "v1," + base64.b64encode(bytes(mac)).decode()}, body,
                        now=timestamp)
    assert not W.verify(secret, sent | {"webhook-id": msg_id + "x"}, body, now=timestamp)
    assert not W.verify(secret, sent | {"webhook-timestamp": str(timestamp + 1)}, body, now=timestamp)
    other = data.draw(secret_st)
    if W.secret_key(other) != W.secret_key(secret):
        assert not W.verify(other, sent, body, now=timestamp)


NOW = 1_750_000_000


def sent_at(timestamp: int, body: bytes = b"{}") -> dict:
    return W.headers(SPEC_SECRET, "msg_1", timestamp, body)


@pytest.mark.parametrize("received, now, ok", [
    (sent_at(NOW), NOW, True),
    (sent_at(NOW - 300), NOW, True),                    # at the edge of the tolerance
    (sent_at(NOW + 300), NOW, True),
    (sent_at(NOW - 301), NOW, False),                   # stale: a replay
    (sent_at(NOW + 301), NOW, False),                   # from the future
    (sent_at(NOW), utc(2025, 6, 15, 15, 6, 40), True),  # now as a datetime (= NOW)
    ({k.upper(): v for k, v in sent_at(NOW).items()}, NOW, True),          # header names, any case
    (sent_at(NOW) | {"webhook-signature": "v1,AAAA " + sent_at(NOW)["webhook-signature"]}, NOW, True),  # rotation
    (sent_at(NOW) | {"webhook-signature": "v1a," + sent_at(NOW)["webhook-signature"][3:]}, NOW, False),
    (sent_at(NOW) | {"webhook-signature": "v1,%%%% v2,abc"}, NOW, False),
    (sent_at(NOW) | {"webhook-signature": ""}, NOW, False),
    (sent_at(NOW) | {"webhook-timestamp": f"{NOW}.0"}, NOW, False),
    (sent_at(NOW) | {"webhook-timestamp": f" {NOW}"}, NOW, False),
    (sent_at(NOW) | {"webhook-timestamp": "-1"}, NOW, False),
    (sent_at(NOW) | {"webhook-timestamp": "１７５００００００００"}, NOW, False),   # digits, but not ASCII
    ({k: v for k, v in sent_at(NOW).items() if k != "webhook-id"}, NOW, False),
    ({k: v for k, v in sent_at(NOW).items() if k != "webhook-timestamp"}, NOW, False),
    ({k: v for k, v in sent_at(NOW).items() if k != "webhook-signature"}, NOW, False),
])
def test_verify(received, now, ok):
    assert W.verify(SPEC_SECRET, received, b"{}", now=now) is ok


def test_tolerance_can_be_set_and_a_bad_secret_just_fails():
    assert W.verify(SPEC_SECRET, sent_at(NOW - 3600), b"{}", now=NOW, tolerance=3600)
    assert not W.verify("whsec_nonsense!", sent_at(NOW), b"{}", now=NOW)


@pytest.mark.parametrize("msg_id", ["", "a.b", "msg 1", "msg\n1", "msg_é"])
def test_ambiguous_message_ids_are_refused(msg_id):
    with pytest.raises(ValueError):
        W.sign(SPEC_SECRET, msg_id, NOW, b"{}")
    # A delivery claiming such an id does not verify either.
    received = {"webhook-id": msg_id, "webhook-timestamp": str(NOW),
                "webhook-signature": independent_signature(SPEC_SECRET, msg_id, NOW, b"{}")}
    assert not W.verify(SPEC_SECRET, received, b"{}", now=NOW)


@pytest.mark.parametrize("timestamp, body", [(-1, b"{}"), (1.5, b"{}"), (True, b"{}"), (NOW, "{}")])
def test_sign_refuses_a_bad_timestamp_or_a_body_that_is_not_bytes(timestamp, body):
    with pytest.raises(ValueError):
        W.sign(SPEC_SECRET, "msg_1", timestamp, body)


def test_payload_is_compact_sorted_json_in_the_recommended_shape():
    body = W.payload("referral.status_changed", utc(2026, 6, 12, 14, 3, 9),
                     {"referral_id": "r-1", "status": "accepted", "detail": "accepted for restorative justice"})
    assert body == (b'{"data":{"detail":"accepted for restorative justice","referral_id":"r-1","status":"accepted"},'
                    b'"timestamp":"2026-06-12T14:03:09.000Z","type":"referral.status_changed"}')
    assert json.loads(body)["type"] == "referral.status_changed"
    assert W.payload("x", utc(2026, 1, 1), {"name": "Siân"}) == (
        '{"data":{"name":"Siân"},"timestamp":"2026-01-01T00:00:00.000Z","type":"x"}'.encode())


def test_a_messages_id_is_the_same_on_every_retry():
    key = "evt-1|referrer|agency-1|webhook"
    assert W.message_id(key) == W.message_id(key) != W.message_id(key + "x")
    assert W.message_id(key).startswith("msg_") and "." not in W.message_id(key)
    W.sign(SPEC_SECRET, W.message_id(key), NOW, b"{}")     # a usable id


@pytest.mark.parametrize("code, outcome", [
    (200, "delivered"), (204, "delivered"), (299, "delivered"), (410, "failed"), (301, "retry"), (400, "retry"),
    (401, "retry"), (404, "retry"), (429, "retry"), (500, "retry"), (503, "retry"),
])
def test_outcome(code, outcome):
    assert W.outcome(code) == outcome


@pytest.mark.parametrize("url, allow_http, problems", [
    ("https://agency.example.org/rj/callback", False, []),
    ("https://agency.example.org:8443/rj", False, []),
    ("http://agency.example.org/rj", False, ["must use https"]),
    ("http://localhost:8080/hook", True, []),
    ("https://user:pw@agency.example.org/", False, ["must not carry a user name or password"]),
    ("https://10.0.0.5/hook", False, ["must not point at a private, loopback or link-local address"]),
    ("https://127.0.0.1/hook", False, ["must not point at a private, loopback or link-local address"]),
    ("https://169.254.169.254/latest/meta-data", False,
     ["must not point at a private, loopback or link-local address"]),
    ("https://[::1]/hook", False, ["must not point at a private, loopback or link-local address"]),
    ("https://localhost/hook", False, ["must not point at this machine"]),
    ("https:///hook", False, ["must name a host"]),
    ("https://agency.example.org/#frag", False, ["must not have a fragment (#...)"]),
    ("ftp://agency.example.org/", False, ["must use https"]),
    ("https://agency.example.org:99999/", False, ["is not a valid URL"]),
])
def test_url_problems(url, allow_http, problems):
    assert W.url_problems(url, allow_http=allow_http) == problems
