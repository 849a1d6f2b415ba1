"""The delivery adapters against local servers over real sockets: an SMTP sink, a stand-in SMS and
letter provider, a webhook receiver, and a server that accepts connections but never answers."""
from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from mend_common.testing.processes import free_port
from mend_common.testing.provider_server import ProviderServer
from mend_common.testing.smtp_sink import SmtpSink
from mend_common.testing.webhook_receiver import WebhookReceiver, verify_signature
from mend_notifications.adapters.channels import (
    PermanentFailure, ProviderClient, RateLimited, SmtpSender, TemporaryFailure, WebhookSender,
)

SENDER = "Mend Restorative Justice <noreply@mend.example>"
API_KEY = "provider-test-key"
SECRET = "whsec_" + base64.b64encode(b"a-32-byte-webhook-signing-secret").decode()
ICS = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Mend//EN\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
       b"UID:conf-1@mend\r\nDTSTART:20260301T100000Z\r\nSUMMARY:Restorative conference\r\nEND:VEVENT\r\n"
       b"END:VCALENDAR\r\n")
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture
def sink():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def smtp(sink):
    sender = SmtpSender("127.0.0.1", sink.port, sender=SENDER, timeout=5)
    yield sender
    sender.close()


@pytest.fixture
def provider():
    server = ProviderServer(api_key=API_KEY).start()
    yield server
    server.stop()


@pytest.fixture
def client(provider):
    client = ProviderClient(provider.base_url, API_KEY, timeout=5)
    yield client
    client.close()


@pytest.fixture
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def webhooks():
    sender = WebhookSender(timeout=5)
    yield sender
    sender.close()


@pytest.fixture
def silent_port():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def _within(seconds: float):
    """Context manager asserting the block took at most `seconds`."""
    class _Timer:
        def __enter__(self):
            self.start = time.monotonic()
            return self

        def __exit__(self, *exc):
            self.elapsed = time.monotonic() - self.start
            assert self.elapsed <= seconds, f"took {self.elapsed:.2f}s, more than {seconds}s"
            return False
    return _Timer()


# ---------------------------------------------------------------------------------------------
# E-mail

def test_an_email_with_an_invite_and_a_pdf_arrives_with_its_message_id_and_headers(sink, smtp):
    message_id = smtp.send(message_id="0f6c5d3e-1111-4a4a-9b9b-000000000001", to="Victim Person <victim@example.org>",
                           subject="Your conference on 1 March — details", body="Dear V,\nSee the invite.\n.\nMend",
                           attachments=[("invite.ics", "text/calendar; method=REQUEST", ICS),
                                        ("letter.pdf", "application/pdf", PDF)],
                           headers={"Reply-To": "caseworker@mend.example", "X-Mend-Case": "case-42"})

    assert message_id == "<0f6c5d3e-1111-4a4a-9b9b-000000000001@mend>"
    [msg] = sink.wait_for(1, timeout=5)
    assert msg["Message-ID"] == message_id
    assert msg["From"] == SENDER
    assert msg["To"] == "Victim Person <victim@example.org>"
    assert msg["Subject"] == "Your conference on 1 March — details"
    assert msg["Reply-To"] == "caseworker@mend.example"
    assert msg["X-Mend-Case"] == "case-42"
    sent_at = msg["Date"].datetime
    assert sent_at.tzinfo is not None and abs((datetime.datetime.now(datetime.timezone.utc) - sent_at).total_seconds()) < 60
    assert sink.envelopes == [("noreply@mend.example", ["victim@example.org"])]

    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")   # CRLF: the canonical form
    assert text == "Dear V,\nSee the invite.\n.\nMend\n"   # the lone dot survived the SMTP dot-stuffing
    invite, pdf = list(msg.iter_attachments())
    assert invite.get_content_type() == "text/calendar"
    assert invite.get_param("method") == "REQUEST"
    assert invite.get_filename() == "invite.ics"
    assert invite.get_payload(decode=True) == ICS
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == "letter.pdf"
    assert pdf.get_payload(decode=True) == PDF


def test_one_connection_carries_a_fan_out(sink, smtp):
    ids = [smtp.send(message_id=f"fan-{i}", to=f"person{i}@example.org", subject="Update", body="Hello")
           for i in range(60)]

    sink.wait_for(60, timeout=5)
    assert sink.connections == 1
    assert smtp.connections_opened == 1
    assert sink.message_ids() == ids
    assert len(set(ids)) == 60


def test_a_connection_the_server_dropped_is_replaced_without_sending_twice(sink, smtp):
    smtp.send(message_id="before", to="a@example.org", subject="s", body="b")
    sink.drop_connections()

    smtp.send(message_id="after", to="a@example.org", subject="s", body="b")

    assert sink.wait_for(2, timeout=5) and sink.message_ids() == ["<before@mend>", "<after@mend>"]
    assert sink.connections == 2


def test_a_hang_up_before_the_message_went_out_is_retried_on_a_new_connection(sink, smtp):
    sink.hang_up_next(1, stage="mail")

    assert smtp.send(message_id="m1", to="a@example.org", subject="s", body="b") == "<m1@mend>"

    assert sink.message_ids() == ["<m1@mend>"]
    assert sink.connections == 2


def test_a_hang_up_after_the_message_went_out_is_not_retried_by_the_sender(sink, smtp):
    sink.hang_up_next(1, stage="data")   # the server kept it, but its answer never came

    with pytest.raises(TemporaryFailure):
        smtp.send(message_id="m1", to="a@example.org", subject="s", body="b")
    assert sink.message_ids() == ["<m1@mend>"]   # once: a retry now would risk a second copy

    smtp.send(message_id="m2", to="a@example.org", subject="s", body="b")
    assert sink.message_ids() == ["<m1@mend>", "<m2@mend>"]


def test_an_idle_connection_is_checked_with_noop_before_use(sink):
    with SmtpSender("127.0.0.1", sink.port, sender=SENDER, timeout=5, idle_check_seconds=0.2) as smtp:
        smtp.send(message_id="one", to="a@example.org", subject="s", body="b")
        smtp.send(message_id="two", to="a@example.org", subject="s", body="b")
        assert sink.noops == 0                      # busy: no check
        time.sleep(0.3)
        sink.drop_connections()
        smtp.send(message_id="three", to="a@example.org", subject="s", body="b")
        assert sink.noops == 0                      # the check found the connection dead...
        assert sink.connections == 2                # ...and a new one carried the message
        time.sleep(0.3)
        smtp.send(message_id="four", to="a@example.org", subject="s", body="b")
        assert sink.noops == 1 and sink.connections == 2
    assert sink.message_ids() == ["<one@mend>", "<two@mend>", "<three@mend>", "<four@mend>"]


def test_451_is_a_temporary_failure_and_the_connection_goes_on(sink, smtp):
    sink.fail_next(1, code=451)

    with pytest.raises(TemporaryFailure) as failure:
        smtp.send(message_id="m1", to="a@example.org", subject="s", body="b")
    assert failure.value.code == 451
    assert not isinstance(failure.value, PermanentFailure)

    smtp.send(message_id="m1", to="a@example.org", subject="s", body="b")   # the retry
    assert sink.message_ids() == ["<m1@mend>"]
    assert sink.connections == 1


def test_550_for_a_recipient_is_a_permanent_failure(sink, smtp):
    sink.reject_recipient("gone@example.org", code=550)

    with pytest.raises(PermanentFailure) as failure:
        smtp.send(message_id="m1", to="gone@example.org", subject="s", body="b")
    assert failure.value.code == 550
    assert "gone@example.org" in str(failure.value)

    smtp.send(message_id="m2", to="here@example.org", subject="s", body="b")
    assert sink.message_ids() == ["<m2@mend>"]


@pytest.mark.parametrize("code, stage, expected", [
    (452, "rcpt", TemporaryFailure), (421, "mail", TemporaryFailure),
    (554, "data", PermanentFailure), (552, "data", PermanentFailure),
])
def test_smtp_replies_map_to_the_failure_they_mean(sink, smtp, code, stage, expected):
    sink.fail_next(1, code=code, stage=stage)

    with pytest.raises(expected) as failure:
        smtp.send(message_id="m1", to="a@example.org", subject="s", body="b")
    assert failure.value.code == code

    smtp.send(message_id="m2", to="a@example.org", subject="s", body="b")   # the sender recovers
    assert sink.message_ids() == ["<m2@mend>"]


@pytest.mark.parametrize("kwargs", [
    {"to": "not an address"},
    {"to": "a@example.org", "subject": "injected\r\nBcc: everyone@example.org"},
    {"to": "a@example.org", "headers": {"Message-ID": "<other@elsewhere>"}},
    {"to": "a@example.org", "message_id": "has space"},
])
def test_a_message_that_cannot_be_sent_is_refused_before_connecting(sink, smtp, kwargs):
    args = {"message_id": "m1", "subject": "s", "body": "b", **kwargs}

    with pytest.raises(PermanentFailure):
        smtp.send(**args)
    assert sink.connections == 0 and sink.accepted == 0


def test_an_smtp_server_that_is_down_is_a_temporary_failure():
    with SmtpSender("127.0.0.1", free_port(), sender=SENDER, timeout=2) as smtp, _within(2):
        with pytest.raises(TemporaryFailure):
            smtp.send(message_id="m1", to="a@example.org", subject="s", body="b")


def test_an_smtp_server_that_never_answers_is_a_temporary_failure_within_the_timeout(silent_port):
    with SmtpSender("127.0.0.1", silent_port, sender=SENDER, timeout=0.5) as smtp, _within(2):
        with pytest.raises(TemporaryFailure):
            smtp.send(message_id="m1", to="a@example.org", subject="s", body="b")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    directory = tmp_path_factory.mktemp("tls")
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return directory / "cert.pem", directory / "key.pem"


def test_starttls_and_login(tls_files):
    cert, key = tls_files
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=str(cert))
    with SmtpSink(tls_context=server_tls, credentials={"mend": "s3cret"}) as sink:
        with SmtpSender("127.0.0.1", sink.port, sender=SENDER, timeout=5, starttls=True, tls_context=client_tls,
                        username="mend", password="s3cret") as smtp:
            smtp.send(message_id="tls-1", to="a@example.org", subject="s", body="b")
        with SmtpSender("127.0.0.1", sink.port, sender=SENDER, timeout=5, starttls=True, tls_context=client_tls,
                        username="mend", password="wrong") as smtp:
            with pytest.raises(PermanentFailure) as failure:
                smtp.send(message_id="tls-2", to="a@example.org", subject="s", body="b")
            assert failure.value.code == 535
        with SmtpSender("127.0.0.1", sink.port, sender=SENDER, timeout=5, starttls=True,
                        username="mend", password="s3cret") as smtp:   # the default context does not trust it
            with pytest.raises(TemporaryFailure):
                smtp.send(message_id="tls-3", to="a@example.org", subject="s", body="b")
        assert sink.message_ids() == ["<tls-1@mend>"]


def test_the_sink_as_a_process_records_one_line_per_message(tmp_path):
    record = tmp_path / "smtp.jsonl"
    src = Path(__file__).resolve().parents[3] / "common" / "src"
    env = {"PYTHONPATH": f"{src}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "mend_common.testing.smtp_sink", "--port", "0",
                             "--record", str(record)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        ready = proc.stdout.readline().split()
        assert ready[0] == "ready", ready
        with SmtpSender("127.0.0.1", int(ready[1]), sender=SENDER, timeout=5) as smtp:
            for message_id in ("a", "b", "a"):
                smtp.send(message_id=message_id, to="x@example.org", subject=f"about {message_id}", body="b")
        lines = [json.loads(line) for line in record.read_text().splitlines()]
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
    assert [line["message_id"] for line in lines] == ["<a@mend>", "<b@mend>", "<a@mend>"]
    assert lines[1]["to"] == "x@example.org" and lines[1]["subject"] == "about b"
    assert all(isinstance(line["received_at"], float) for line in lines)


# ---------------------------------------------------------------------------------------------
# SMS and letters

def test_an_sms_is_accepted_and_its_status_followed(provider, client):
    ref = client.send_sms(message_id="sms-1", to="+447700900123", body="Your meeting is at 10:00.")

    [sms] = provider.sms
    assert sms["id"] == ref
    assert (sms["to"], sms["body"], sms["reference"], sms["idempotency_key"]) == (
        "+447700900123", "Your meeting is at 10:00.", "sms-1", "sms-1")
    assert client.status(ref) == "sent"
    provider.set_status(ref, "delivered")
    assert client.status(ref) == "delivered"
    provider.set_status(ref, "bounced")
    assert client.status(ref) == "bounced"


def test_a_letter_is_accepted_with_its_pdf(provider, client):
    ref = client.send_letter(message_id="letter-1", address_lines=["Ms A Person", "1 High Street", "Lancaster"],
                             postcode="LA1 1AA", pdf=PDF)

    [letter] = provider.letters
    assert letter["id"] == ref
    assert letter["pdf"] == PDF
    assert letter["address_lines"] == ["Ms A Person", "1 High Street", "Lancaster"]
    assert letter["postcode"] == "LA1 1AA"
    assert client.status(ref) == "sent"


def test_the_idempotency_key_makes_a_retry_send_nothing_new(provider, client):
    first = client.send_sms(message_id="sms-1", to="+447700900123", body="Hello")
    again = client.send_sms(message_id="sms-1", to="+447700900123", body="Hello")
    other = client.send_sms(message_id="sms-2", to="+447700900123", body="Hello")

    assert again == first and other != first
    assert [s["reference"] for s in provider.sms] == ["sms-1", "sms-2"]
    assert provider.replays == 1


def test_a_timeout_after_the_provider_took_the_request_is_retried_without_a_second_sms(provider):
    provider.stall_next(1, seconds=30)   # handled, but the answer never comes in time
    with ProviderClient(provider.base_url, API_KEY, timeout=0.5) as client:
        with _within(2), pytest.raises(TemporaryFailure):
            client.send_sms(message_id="sms-1", to="+447700900123", body="Hello")
        ref = client.send_sms(message_id="sms-1", to="+447700900123", body="Hello")

    assert [s["id"] for s in provider.sms] == [ref]


def test_429_is_rate_limited_with_the_retry_after(provider, client):
    provider.rate_limit(1, retry_after=7)

    with pytest.raises(RateLimited) as failure:
        client.send_sms(message_id="sms-1", to="+447700900123", body="Hello")
    assert isinstance(failure.value, TemporaryFailure)
    assert failure.value.retry_after == 7
    assert failure.value.code == 429

    client.send_sms(message_id="sms-1", to="+447700900123", body="Hello")
    assert len(provider.sms) == 1


def test_503_is_a_temporary_failure(provider, client):
    provider.fail_next(2, status=503, retry_after=2)

    for _ in range(2):
        with pytest.raises(TemporaryFailure) as failure:
            client.send_letter(message_id="l-1", address_lines=["A", "B"], postcode="M1 1AA", pdf=PDF)
        assert not isinstance(failure.value, RateLimited)
        assert failure.value.code == 503 and failure.value.retry_after == 2
    client.send_letter(message_id="l-1", address_lines=["A", "B"], postcode="M1 1AA", pdf=PDF)
    assert len(provider.letters) == 1


@pytest.mark.parametrize("send, error", [
    (lambda c: c.send_sms(message_id="s", to="call me maybe", body="Hello"), "phone number"),
    (lambda c: c.send_sms(message_id="s", to="+447700900123", body=""), "body"),
    (lambda c: c.send_letter(message_id="l", address_lines=["A", "B"], postcode="nowhere", pdf=PDF), "postcode"),
    (lambda c: c.send_letter(message_id="l", address_lines=["A", "B"], postcode="M1 1AA", pdf=b"GIF89a"), "PDF"),
])
def test_a_request_the_provider_refuses_is_a_permanent_failure_with_its_reason(provider, client, send, error):
    with pytest.raises(PermanentFailure) as failure:
        send(client)
    assert failure.value.code == 400
    assert error in str(failure.value)
    assert provider.sms == [] and provider.letters == []


def test_a_wrong_api_key_is_a_permanent_failure(provider):
    with ProviderClient(provider.base_url, "not-the-key", timeout=5) as client:
        with pytest.raises(PermanentFailure) as failure:
            client.send_sms(message_id="s", to="+447700900123", body="Hello")
    assert failure.value.code == 401
    assert provider.sms == []


def test_the_status_of_an_unknown_reference_is_a_permanent_failure(client):
    with pytest.raises(PermanentFailure) as failure:
        client.status("sms_does_not_exist")
    assert failure.value.code == 404


def test_a_provider_that_never_answers_is_a_temporary_failure_within_the_timeout(silent_port):
    with ProviderClient(f"http://127.0.0.1:{silent_port}", API_KEY, timeout=0.5) as client, _within(2):
        with pytest.raises(TemporaryFailure):
            client.send_sms(message_id="s", to="+447700900123", body="Hello")


def test_a_provider_that_is_down_is_a_temporary_failure():
    with ProviderClient(f"http://127.0.0.1:{free_port()}", API_KEY, timeout=2) as client, _within(2):
        with pytest.raises(TemporaryFailure):
            client.status("sms_1")


# ---------------------------------------------------------------------------------------------
# Webhooks

def test_a_webhook_is_signed_so_the_receiver_can_verify_it(receiver, webhooks):
    body = json.dumps({"type": "case.opened", "case_id": "c-1"}).encode()

    assert webhooks.post(receiver.url, secret=SECRET, msg_id="msg_1", body=body) == 200

    [request] = receiver.requests
    assert request.body == body
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == "msg_1"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert receiver.verified(SECRET) == [body]
    assert receiver.verified(SECRET, tolerance=300) == [body]
    assert receiver.verified("whsec_" + base64.b64encode(b"some other secret").decode()) == []


def test_the_signature_is_the_standard_webhooks_one(receiver, webhooks):
    """The specification's published test vector: any Standard Webhooks library verifies us."""
    secret, body = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", b'{"test": 2432232314}'

    webhooks.post(receiver.url, secret=secret, msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek", body=body,
                  timestamp=1614265330)

    [request] = receiver.requests
    assert request.headers["webhook-timestamp"] == "1614265330"
    assert request.headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert receiver.verified(secret) == [body]
    assert receiver.verified(secret, tolerance=300) == []     # a five-year-old timestamp is a replay


def test_a_tampered_webhook_fails_verification(receiver, webhooks):
    body = b'{"amount": 10}'
    webhooks.post(receiver.url, secret=SECRET, msg_id="msg_1", body=body)
    [request] = receiver.requests

    assert verify_signature(SECRET, request.headers, body)
    assert not verify_signature(SECRET, request.headers, b'{"amount": 1000}')
    assert not verify_signature(SECRET, {**request.headers, "webhook-id": "msg_2"}, body)
    assert not verify_signature(SECRET, {**request.headers, "webhook-timestamp": "1"}, body)

    requests.post(receiver.url, data=b'{"amount": 1000}', headers=request.headers, timeout=5)   # a forgery
    assert receiver.verified(SECRET) == [body]


def test_410_gone_is_a_permanent_failure(receiver, webhooks):
    receiver.gone()

    with pytest.raises(PermanentFailure) as failure:
        webhooks.post(receiver.url, secret=SECRET, msg_id="msg_1", body=b"{}")
    assert failure.value.code == 410
    assert "asks us to stop" in str(failure.value)


@pytest.mark.parametrize("status, expected", [(500, TemporaryFailure), (503, TemporaryFailure),
                                               (429, RateLimited), (400, PermanentFailure),
                                               (404, PermanentFailure)])
def test_webhook_answers_map_to_the_failure_they_mean(receiver, webhooks, status, expected):
    receiver.fail_next(1, status=status, retry_after=3)

    with pytest.raises(expected) as failure:
        webhooks.post(receiver.url, secret=SECRET, msg_id="msg_1", body=b"{}")
    assert failure.value.code == status
    if expected is PermanentFailure:
        assert not isinstance(failure.value, TemporaryFailure)
    else:
        assert failure.value.retry_after == 3

    assert webhooks.post(receiver.url, secret=SECRET, msg_id="msg_1", body=b"{}") == 200   # the retry
    assert [r.status for r in receiver.requests] == [status, 200]


def test_a_receiver_that_never_answers_is_a_temporary_failure_within_the_timeout(silent_port):
    with WebhookSender(timeout=0.5) as webhooks, _within(2):
        with pytest.raises(TemporaryFailure):
            webhooks.post(f"http://127.0.0.1:{silent_port}/hook?token=abc", secret=SECRET, msg_id="m", body=b"{}")


def test_a_sender_for_public_endpoints_refuses_one_inside_our_network(receiver):
    with WebhookSender(timeout=5, public_only=True) as webhooks:
        for url in (receiver.url, receiver.url.replace("127.0.0.1", "localhost")):
            with pytest.raises(PermanentFailure) as failure:
                webhooks.post(url, secret=SECRET, msg_id="m", body=b"{}")
            assert "not a public address" in str(failure.value)
    assert receiver.requests == []


def test_a_bad_secret_is_a_permanent_failure(receiver, webhooks):
    with pytest.raises(PermanentFailure):
        webhooks.post(receiver.url, secret="whsec_not base64!", msg_id="m", body=b"{}")
    assert receiver.requests == []
