"""The referrals HTTP/JSON contract (openapi.yaml) against the running api process, on SQLite and
on PostgreSQL: every status a partner agency can meet, the body each carries, and a schemathesis
run over the served schema that allows no 5xx and no answer outside the contract."""
from __future__ import annotations

import copy
import json
import re
import uuid
from datetime import date

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from mend_cli.pytest_stack import referral_draft
from mend_common.http import MAX_BODY_BYTES
from mend_referrals.domain import referral as referral_rules
from mend_referrals.domain.referral import parse_draft
from mend_referrals.domain.vocabulary import (CONTACT_CHANNELS, INITIATORS, OFFENCE_CATEGORIES, PARTICIPANT_ROLES,
                                              ReferralStatus, VULNERABILITIES)
from mend_referrals.entrypoints.http_api import OPENAPI_PATH
from mend_referrals.service_layer.services import REQUEST_ID_RE

TIMEOUT = 10
SPEC = yaml.safe_load(OPENAPI_PATH.read_text())
SCHEMAS = SPEC["components"]["schemas"]
CONTRACT = schemathesis.openapi.from_path(OPENAPI_PATH)
SUBMIT = CONTRACT["/v1/referrals"]["POST"]
GET_ONE = CONTRACT["/v1/referrals/{referral_id}"]["GET"]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


def schema_validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"components": SPEC["components"], "$ref": f"#/components/schemas/{name}"},
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def new_key() -> str:
    return f"it-{uuid.uuid4().hex}"


def submit(tenant, body, *, key: str | None = "new", api_key: str | None = None, **kwargs) -> requests.Response:
    headers = {"x-api-key": api_key or tenant.api_key}
    if key is not None:
        headers["Idempotency-Key"] = new_key() if key == "new" else key
    headers.update(kwargs.pop("headers", {}))
    if "data" not in kwargs:
        kwargs["json"] = body
    return requests.post(f"{tenant.stack.http_base('referrals')}/v1/referrals", headers=headers, timeout=TIMEOUT,
                         **kwargs)


def conforms(operation, response: requests.Response) -> None:
    """The answer is one the contract allows for this operation, body and headers included."""
    operation.validate_response(response)


def error_of(response: requests.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code and isinstance(body["message"], str) and body["message"], body
    return body


def violations(response: requests.Response) -> dict[str, str]:
    body = error_of(response, 422, "invalid_argument")
    assert set(body) == {"error", "message", "errors"}
    assert body["errors"] and all(set(v) == {"field", "rule"} for v in body["errors"])
    return {v["field"]: v["rule"] for v in body["errors"]}


def stored_referrals(tenant, other: bool = False) -> list:
    return list(tenant.agency_client(other=other).list().referrals)


# -- the document itself (no running region needed) ----------------------------------------
def test_contract_is_a_valid_openapi_document():
    from openapi_spec_validator import validate

    validate(SPEC)
    assert SPEC["openapi"].startswith("3.1")
    assert {(o.ok().method.upper(), o.ok().path) for o in CONTRACT.get_all_operations()} == {
        ("POST", "/v1/referrals"), ("GET", "/v1/referrals/{referral_id}"), ("GET", "/v1/openapi.yaml"),
        ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}


def test_contract_vocabulary_and_limits_match_the_code():
    draft, offence = SCHEMAS["ReferralDraft"], SCHEMAS["Offence"]
    participant, contact = SCHEMAS["Participant"], SCHEMAS["ContactDetails"]
    assert offence["properties"]["category"]["enum"] == list(OFFENCE_CATEGORIES)
    assert draft["properties"]["initiated_by"]["enum"] == list(INITIATORS)
    assert participant["properties"]["role"]["enum"] == list(PARTICIPANT_ROLES)
    assert participant["properties"]["vulnerabilities"]["items"]["enum"] == list(VULNERABILITIES)
    assert contact["properties"]["preferred_channel"]["enum"] == [*CONTACT_CHANNELS, None]
    assert SCHEMAS["ReferralStatus"]["enum"] == list(ReferralStatus.ALL)
    # Every field parse_draft knows, and no other, is in the contract; unknown ones are refused.
    assert set(draft["properties"]) == referral_rules.TOP_FIELDS
    assert set(offence["properties"]) == referral_rules.OFFENCE_FIELDS
    assert set(participant["properties"]) == referral_rules.PARTICIPANT_FIELDS
    assert set(contact["properties"]) == referral_rules.CONTACT_FIELDS
    for schema in (draft, offence, participant, contact):
        assert schema["additionalProperties"] is False
    assert draft["properties"]["participants"]["maxItems"] == referral_rules.MAX_PARTICIPANTS
    assert draft["properties"]["agency_reference"]["pattern"] == referral_rules.REFERENCE_RE.pattern
    assert contact["properties"]["phone"]["pattern"] == referral_rules.PHONE_RE.pattern
    key = SPEC["components"]["parameters"]["IdempotencyKey"]
    assert key["required"] is True and key["in"] == "header"
    assert key["schema"]["pattern"] == REQUEST_ID_RE.pattern
    assert SPEC["components"]["securitySchemes"]["agencyApiKey"] == {
        **SPEC["components"]["securitySchemes"]["agencyApiKey"], "type": "apiKey", "in": "header", "name": "x-api-key"}
    assert str(MAX_BODY_BYTES) in SPEC["info"]["description"]


def test_contract_examples_conform_and_the_draft_example_is_accepted():
    example = SPEC["components"]["examples"]["ReferralDraft"]["value"]
    schema_validator("ReferralDraft").validate(example)
    parsed = parse_draft(example, today=date(2026, 11, 1))
    assert parsed.agency_reference == example["agency_reference"]
    # The fixtures' draft is a contract-valid body too.
    schema_validator("ReferralDraft").validate(referral_draft("some-county"))
    for path, operations in SPEC["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    response = SPEC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
                for media in response.get("content", {}).values():
                    for name, ex in media.get("examples", {}).items():
                        wrapper = Draft202012Validator(
                            {"components": SPEC["components"], **media["schema"]},
                            format_checker=Draft202012Validator.FORMAT_CHECKER)
                        errors = list(wrapper.iter_errors(ex["value"]))
                        assert not errors, (path, method, status, name, errors)


def test_contract_schema_rejects_what_the_service_rejects():
    good = referral_draft("some-county")
    check = schema_validator("ReferralDraft")
    for bad in (dict(good, colour="red"),
                dict(good, offence=dict(good["offence"], category="arson")),
                dict(good, participants=[dict(good["participants"][0], role="witness")]),
                dict(good, participants=[dict(good["participants"][0], vulnerabilities=["grumpy"])]),
                dict(good, participants=[dict(good["participants"][0], shoe_size=9)]),
                dict(good, participants=[{"role": "victim"}]),
                dict(good, participants=[]),
                dict(good, agency_reference="-starts-with-hyphen")):
        assert not check.is_valid(bad), bad


# -- the running api process ----------------------------------------------------------------
def test_served_contract_is_the_file_and_valid(stack):
    from openapi_spec_validator import validate

    response = requests.get(f"{stack.http_base('referrals')}/v1/openapi.yaml", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/yaml")
    assert response.content == OPENAPI_PATH.read_bytes()
    validate(yaml.safe_load(response.content))
    CONTRACT["/v1/openapi.yaml"]["GET"].validate_response(response)
    for path in ("/healthz", "/readyz", "/metrics"):
        answer = requests.get(f"{stack.http_base('referrals')}{path}", timeout=TIMEOUT)
        assert answer.status_code == 200, (path, answer.text)
        CONTRACT[path]["GET"].validate_response(answer)


def test_created_read_replayed_and_conflicting(tenant):
    draft = referral_draft(tenant.county)
    key = new_key()
    created = submit(tenant, draft, key=key)
    assert created.status_code == 201, created.text
    conforms(SUBMIT, created)
    body = created.json()
    assert body["status"] == "received" and body["replayed"] is False
    assert created.headers["Location"] == f"/v1/referrals/{body['referral_id']}"

    read = requests.get(f"{tenant.stack.http_base('referrals')}{created.headers['Location']}",
                        headers={"x-api-key": tenant.api_key}, timeout=TIMEOUT)
    assert read.status_code == 200, read.text
    conforms(GET_ONE, read)
    assert read.json()["agency_reference"] == draft["agency_reference"]
    assert read.json()["county"] == tenant.county and read.json()["history"][0]["status"] == "received"

    replay = submit(tenant, draft, key=key)
    assert replay.status_code == 200, replay.text
    conforms(SUBMIT, replay)
    assert replay.json() == dict(body, replayed=True)

    same_key_other_body = submit(tenant, dict(draft, reason="something else"), key=key)
    conforms(SUBMIT, same_key_other_body)
    assert "different referral" in error_of(same_key_other_body, 409, "already_exists")["message"]

    reference_reused = submit(tenant, dict(draft, reason="a second referral"))
    conforms(SUBMIT, reference_reused)
    assert draft["agency_reference"] in error_of(reference_reused, 409, "already_exists")["message"]

    assert [r.referral_id for r in stored_referrals(tenant)] == [body["referral_id"]]


def test_json_with_a_charset_is_accepted(tenant):
    created = submit(tenant, None, data=json.dumps(referral_draft(tenant.county)).encode(),
                     headers={"Content-Type": "application/json; charset=utf-8"})
    assert created.status_code == 201, created.text


def _bad(draft: dict, path: str, value) -> dict:
    """draft with the dotted path (list indexes as numbers) set to value."""
    data = copy.deepcopy(draft)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    target = data
    for part in parents:
        target = target[part]
    target[last] = value
    return data


@pytest.mark.parametrize("path, value, field, rule", [
    ("nickname", "x", "nickname", "is not a recognised field"),
    ("offence.weapon", "knife", "offence.weapon", "is not a recognised field"),
    ("participants.0.shoe_size", 9, "participants[0].shoe_size", "is not a recognised field"),
    ("participants.0.contact.fax", "0123", "participants[0].contact.fax", "is not a recognised field"),
    ("offence.category", "arson", "offence.category", "must be one of"),
    ("initiated_by", "court_led", "initiated_by", "must be one of"),
    ("participants.1.role", "witness", "participants[1].role", "must be one of"),
    ("participants.0.vulnerabilities", ["grumpy"], "participants[0].vulnerabilities[0]", "must be one of"),
    ("participants.0.contact.preferred_channel", "pigeon", "participants[0].contact.preferred_channel",
     "must be one of"),
    ("offence.date", "2999-01-01", "offence.date", "must not be in the future"),
    ("offence.date", "14/09/2026", "offence.date", "YYYY-MM-DD"),
    ("participants.0.age", "37", "participants[0].age", "whole number"),
    ("participants.0.contact.email", "not-an-email", "participants[0].contact.email", "email address"),
    ("agency_reference", "-bad", "agency_reference", "must start with a letter or digit"),
    ("participants", [], "participants", "at least one"),
])
def test_each_broken_rule_is_a_422_naming_the_field(tenant, path, value, field, rule):
    response = submit(tenant, _bad(referral_draft(tenant.county), path, value))
    conforms(SUBMIT, response)
    found = violations(response)
    assert field in found and rule in found[field], found


def test_every_bad_field_is_named_at_once_and_nothing_is_stored(tenant):
    draft = dict(referral_draft(tenant.county), colour="red", county="someone-elses-county")
    draft["offence"] = dict(draft["offence"], category="arson", date="2026-02-30")
    draft["participants"][0]["contact"] = {"email": "jo@", "preferred_channel": "pigeon", "fax": "1"}
    draft["participants"][1]["role"] = "witness"
    response = submit(tenant, draft, key="short")
    conforms(SUBMIT, response)
    found = violations(response)
    assert {"request_id", "county", "colour", "offence.category", "offence.date", "participants[0].contact.email",
            "participants[0].contact.preferred_channel", "participants[0].contact.fax",
            "participants[1].role"} <= set(found), found
    assert "your agency's county" in found["county"]

    missing_key = submit(tenant, referral_draft(tenant.county), key=None)
    conforms(SUBMIT, missing_key)
    assert "Idempotency-Key" in violations(missing_key)["request_id"]

    # A 422 stores nothing: not the referral, and not its Idempotency-Key either.
    key = new_key()
    rejected = submit(tenant, dict(referral_draft(tenant.county), initiated_by="nobody"), key=key)
    assert rejected.status_code == 422
    assert stored_referrals(tenant) == [] and stored_referrals(tenant, other=True) == []
    accepted = submit(tenant, referral_draft(tenant.county), key=key)
    assert accepted.status_code == 201, accepted.text
    assert [r.referral_id for r in stored_referrals(tenant)] == [accepted.json()["referral_id"]]


@pytest.mark.parametrize("data", [b"[1,2]", b'"a referral"', b"null", b"42", b"{not json", b"",
                                  b'{"reason": "\xff\xfe"}', b"[" * 200_000, b'{"reason": "\\udc00"}'],
                         ids=["array", "string", "null", "number", "invalid", "empty", "not-utf8", "deeply-nested",
                              "lone-surrogate"])
def test_a_body_that_is_not_a_json_object_is_a_400(tenant, data):
    response = submit(tenant, None, data=data, headers={"Content-Type": "application/json"})
    conforms(SUBMIT, response)
    error_of(response, 400, "malformed_json")
    assert stored_referrals(tenant) == []


def test_a_name_with_an_unpaired_surrogate_is_refused_but_any_real_character_is_stored(tenant):
    # An unpaired surrogate would be stored, then poison the event that opens the case.
    lone = referral_draft(tenant.county)
    lone["participants"][0]["given_name"] = "Jo\ud800"
    error_of(submit(tenant, lone), 400, "malformed_json")
    # json= escapes everything outside ASCII, so the emoji travels as a surrogate *pair*.
    paired = referral_draft(tenant.county)
    paired["participants"][0]["given_name"] = "Zoë \U0001F600"
    assert submit(tenant, paired).status_code == 201
    assert [r.agency_reference for r in stored_referrals(tenant)] == [paired["agency_reference"]]


def test_a_body_over_256_kib_is_a_413(tenant):
    draft = referral_draft(tenant.county, reason="x" * (MAX_BODY_BYTES + 1))
    response = submit(tenant, draft)
    conforms(SUBMIT, response)
    error_of(response, 413, "payload_too_large")

    def chunks():  # no Content-Length: the size is only known once it is read
        body = json.dumps(draft).encode()
        for start in range(0, len(body), 64 * 1024):
            yield body[start:start + 64 * 1024]

    chunked = submit(tenant, None, data=chunks(), headers={"Content-Type": "application/json"})
    assert "Content-Length" not in chunked.request.headers
    error_of(chunked, 413, "payload_too_large")
    # Just under the limit is fine as far as size goes (the reason is then too long: a 422).
    fits = submit(tenant, None, data=json.dumps(referral_draft(tenant.county, reason="x" * 5000)).encode(),
                  headers={"Content-Type": "application/json"})
    assert violations(fits) == {"reason": "must be at most 4000 characters"}
    assert stored_referrals(tenant) == []


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/xml", "application/json-patch+json"])
def test_a_body_that_is_not_sent_as_json_is_a_415(tenant, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = submit(tenant, None, data=json.dumps(referral_draft(tenant.county)).encode(), headers=headers)
    assert response.request.headers.get("Content-Type") == content_type
    conforms(SUBMIT, response)
    error_of(response, 415, "unsupported_media_type")
    assert stored_referrals(tenant) == []


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "not-a-key"}, {"x-api-key": "mend_0123456789abcdef_nope"},
                                     {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer not.a.jwt"}],
                         ids=["none", "malformed", "unknown", "basic", "bad-token"])
def test_missing_or_invalid_credentials_are_a_401(tenant, headers):
    base = tenant.stack.http_base("referrals")
    posted = requests.post(f"{base}/v1/referrals", json=referral_draft(tenant.county), timeout=TIMEOUT,
                           headers={**headers, "Idempotency-Key": new_key()})
    conforms(SUBMIT, posted)
    assert set(error_of(posted, 401, "unauthenticated")) == {"error", "message"}
    read = requests.get(f"{base}/v1/referrals/{uuid.uuid4()}", headers=headers, timeout=TIMEOUT)
    conforms(GET_ONE, read)
    assert set(error_of(read, 401, "unauthenticated")) == {"error", "message"}
    assert stored_referrals(tenant) == []


def test_staff_may_read_but_not_submit(tenant):
    base = tenant.stack.http_base("referrals")
    created = submit(tenant, referral_draft(tenant.county))
    assert created.status_code == 201
    staff = {"Authorization": f"Bearer {tenant.staff_token('coordinator')}"}
    denied = requests.post(f"{base}/v1/referrals", json=referral_draft(tenant.county), timeout=TIMEOUT,
                           headers={**staff, "Idempotency-Key": new_key()})
    conforms(SUBMIT, denied)
    error_of(denied, 403, "permission_denied")
    read = requests.get(f"{base}{created.headers['Location']}", headers=staff, timeout=TIMEOUT)
    assert read.status_code == 200
    conforms(GET_ONE, read)


def test_another_agencys_or_an_unknown_referral_is_a_404(tenant):
    base = tenant.stack.http_base("referrals")
    created = submit(tenant, referral_draft(tenant.county))
    assert created.status_code == 201
    referral_id = created.json()["referral_id"]
    others = requests.get(f"{base}/v1/referrals/{referral_id}", headers={"x-api-key": tenant.other_api_key},
                          timeout=TIMEOUT)
    conforms(GET_ONE, others)
    unknown_id = str(uuid.uuid4())
    unknown = requests.get(f"{base}/v1/referrals/{unknown_id}", headers={"x-api-key": tenant.api_key},
                           timeout=TIMEOUT)
    conforms(GET_ONE, unknown)
    # Indistinguishable: same status, same shape, the message names only the id asked for.
    assert error_of(others, 404, "not_found")["message"] == f"referral {referral_id} not found"
    assert error_of(unknown, 404, "not_found")["message"] == f"referral {unknown_id} not found"
    for not_a_uuid in ("nope", "1", "' OR 1=1 --", "%00"):
        error_of(requests.get(f"{base}/v1/referrals/{not_a_uuid}", headers={"x-api-key": tenant.api_key},
                              timeout=TIMEOUT), 404, "not_found")
    error_of(requests.get(f"{base}/v1/nothing-here", headers={"x-api-key": tenant.api_key}, timeout=TIMEOUT),
             404, "not_found")


@pytest.mark.parametrize("method, path, allowed", [
    ("GET", "/v1/referrals", "POST"), ("PUT", "/v1/referrals", "POST"), ("DELETE", "/v1/referrals/{id}", "GET"),
    ("POST", "/v1/referrals/{id}", "GET"), ("PATCH", "/v1/referrals/{id}", "GET"), ("POST", "/healthz", "GET"),
    ("POST", "/v1/openapi.yaml", "GET"),
])
def test_a_method_a_path_does_not_support_is_a_405(tenant, method, path, allowed):
    url = tenant.stack.http_base("referrals") + path.replace("{id}", str(uuid.uuid4()))
    response = requests.request(method, url, headers={"x-api-key": tenant.api_key}, json={}, timeout=TIMEOUT)
    error_of(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == allowed


def test_every_answer_carries_the_correlation_id(tenant):
    correlation_id = f"corr-{uuid.uuid4().hex}"
    ok = submit(tenant, referral_draft(tenant.county), headers={"X-Correlation-Id": correlation_id})
    bad = submit(tenant, [1, 2], headers={"X-Correlation-Id": correlation_id})
    unauthenticated = requests.get(f"{tenant.stack.http_base('referrals')}/v1/referrals/x", timeout=TIMEOUT,
                                   headers={"X-Correlation-Id": correlation_id})
    for response in (ok, bad, unauthenticated):
        assert response.headers["X-Correlation-Id"] == correlation_id
    generated = submit(tenant, {})
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", generated.headers["X-Correlation-Id"])


# -- schemathesis over the served contract ------------------------------------------------------
FUZZ = settings(max_examples=50, deadline=None, database=None, derandomize=False,
                suppress_health_check=list(HealthCheck))


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_contract(stack, tenant):
    base = stack.http_base("referrals")
    served = schemathesis.openapi.from_url(f"{base}/v1/openapi.yaml", timeout=TIMEOUT)
    session = requests.Session()
    statuses: dict[str, set[int]] = {}

    def run(operation, examples: int, prepare=None, headers=None, modes=tuple(GenerationMode)):
        for mode in modes:
            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(FUZZ, max_examples=examples)
            def check(case):
                if prepare:
                    prepare(case)
                call_headers = dict(headers() if headers else {})
                response = case.call_and_validate(base_url=base, session=session, headers=call_headers,
                                                  checks=CHECKS, timeout=TIMEOUT)
                statuses.setdefault(operation.label, set()).add(response.status_code)

            check()

    def agency_headers():
        return {"x-api-key": tenant.api_key, "Idempotency-Key": new_key()}

    def own_county(case):
        # Aim most bodies at the agency's own county, so more of them reach the deeper rules.
        if isinstance(case.body, dict) and "county" in case.body and uuid.uuid4().int % 4:
            case.body["county"] = tenant.county

    run(served["/v1/referrals"]["POST"], 50, prepare=own_county, headers=agency_headers)
    run(served["/v1/referrals/{referral_id}"]["GET"], 10, headers=lambda: {"x-api-key": tenant.api_key})
    for path in ("/v1/openapi.yaml", "/healthz", "/readyz", "/metrics"):
        run(served[path]["GET"], 2, modes=(GenerationMode.POSITIVE,))  # nothing to negate
    assert {422} <= statuses["POST /v1/referrals"], statuses
    assert 404 in statuses["GET /v1/referrals/{referral_id}"], statuses
