"""mend_common.envelope: the envelope every domain event travels in."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest

from mend_common.envelope import Envelope, InvalidEnvelope, new_event
from mend_common.logs import correlation_id_var

AT = datetime(2026, 6, 1, 9, 30, 15, 123456, tzinfo=timezone.utc)


def valid_body(**changes) -> dict:
    body = new_event("referrals", "referral_received", "cumbria", {"referral_id": "r1", "n": [1, 2]},
                     correlation_id="corr-1", occurred_at=AT).to_dict()
    body.update(changes)
    return body


def test_new_event_fills_the_envelope():
    event = new_event("referrals", "referral_received", "cumbria", {"a": 1}, schema_version=2,
                      correlation_id="corr-1", occurred_at=AT)
    assert uuid.UUID(event.event_id).version == 4
    assert (event.type, event.schema_version, event.county, event.source) == \
        ("referral_received", 2, "cumbria", "referrals")
    assert event.occurred_at == "2026-06-01T09:30:15.123456+00:00"
    assert event.occurred == AT
    assert event.correlation_id == "corr-1"
    assert event.payload == {"a": 1}


def test_each_event_gets_its_own_id():
    assert new_event("s", "t", "c", {}).event_id != new_event("s", "t", "c", {}).event_id


def test_occurred_at_defaults_to_now_in_utc():
    before = datetime.now(timezone.utc)
    event = new_event("s", "t", "c", {})
    assert before <= event.occurred <= datetime.now(timezone.utc)
    assert event.occurred.utcoffset().total_seconds() == 0


def test_correlation_id_comes_from_the_current_context_or_is_new():
    token = correlation_id_var.set("from-context")
    try:
        assert new_event("s", "t", "c", {}).correlation_id == "from-context"
        assert new_event("s", "t", "c", {}, correlation_id="explicit").correlation_id == "explicit"
    finally:
        correlation_id_var.reset(token)
    fresh = new_event("s", "t", "c", {}).correlation_id
    assert fresh and fresh != new_event("s", "t", "c", {}).correlation_id
    int(fresh, 16)


def test_round_trip_through_json():
    event = new_event("cases", "case_opened", "cumbria", {"case_id": "c1", "nested": {"x": [1, None, "y"]}},
                      correlation_id="corr-9", occurred_at=AT)
    assert Envelope.from_dict(json.loads(json.dumps(event.to_dict()))) == event


def test_to_dict_has_every_envelope_field():
    assert set(valid_body()) == {"event_id", "type", "schema_version", "occurred_at", "county", "correlation_id",
                                 "source", "payload"}


def test_missing_correlation_id_is_tolerated():
    body = valid_body()
    del body["correlation_id"]
    assert Envelope.from_dict(body).correlation_id == ""
    assert Envelope.from_dict(valid_body(correlation_id=None)).correlation_id == ""


def test_schema_version_given_as_text_is_read_as_a_number():
    assert Envelope.from_dict(valid_body(schema_version="3")).schema_version == 3


@pytest.mark.parametrize("body", [None, [], "event", 42])
def test_a_body_that_is_not_an_object_is_invalid(body):
    with pytest.raises(InvalidEnvelope, match="JSON object"):
        Envelope.from_dict(body)


@pytest.mark.parametrize("field", ["event_id", "type", "schema_version", "occurred_at", "county", "payload", "source"])
def test_a_missing_field_is_named(field):
    body = valid_body()
    del body[field]
    with pytest.raises(InvalidEnvelope, match=field):
        Envelope.from_dict(body)


def test_every_missing_field_is_named_at_once():
    with pytest.raises(InvalidEnvelope) as info:
        Envelope.from_dict({"type": "x"})
    for field in ("event_id", "schema_version", "occurred_at", "county", "payload", "source"):
        assert field in str(info.value)


@pytest.mark.parametrize("changes, fragment", [
    ({"payload": [1, 2]}, "payload must be a JSON object"),
    ({"payload": None}, "payload must be a JSON object"),
    ({"event_id": "not-a-uuid"}, "malformed"),
    ({"event_id": 12}, "malformed"),
    ({"occurred_at": "yesterday"}, "malformed"),
    ({"occurred_at": None}, "malformed"),
    ({"schema_version": "one"}, "malformed"),
    ({"schema_version": None}, "malformed"),
    ({"schema_version": [1]}, "malformed"),
])
def test_malformed_fields_are_invalid(changes, fragment):
    with pytest.raises(InvalidEnvelope, match=fragment):
        Envelope.from_dict(valid_body(**changes))


def test_invalid_envelope_is_a_value_error():
    assert issubclass(InvalidEnvelope, ValueError)
