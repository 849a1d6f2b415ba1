"""mend_common.errors: violations collected and raised together, and the error kinds."""
from __future__ import annotations

import pytest

from mend_common import errors
from mend_common.errors import FieldViolation, ValidationFailed, Violations


def test_no_violations_is_falsy_and_raises_nothing():
    v = Violations()
    assert not v and v.items == []
    v.raise_if_any()


def test_every_violation_is_raised_together_in_order():
    v = Violations()
    v.add("county", "is required")
    v.add("participants[0].age", "must be a whole number of years from 1 to 120")
    assert v
    with pytest.raises(ValidationFailed) as info:
        v.raise_if_any()
    assert info.value.violations == [FieldViolation("county", "is required"),
                                     FieldViolation("participants[0].age",
                                                    "must be a whole number of years from 1 to 120")]
    assert str(info.value) == "county: is required; participants[0].age: must be a whole number of years from 1 to 120"
    assert info.value.message == "the request is invalid"


def test_validation_failed_keeps_its_own_copy():
    items = [FieldViolation("a", "b")]
    failed = ValidationFailed(items)
    items.append(FieldViolation("c", "d"))
    assert failed.violations == [FieldViolation("a", "b")]


def test_validation_failed_without_violations_shows_its_message():
    assert str(ValidationFailed([], "nothing to say")) == "nothing to say"


def test_field_violation_as_dict():
    assert FieldViolation("offence.date", "must not be in the future").as_dict() == \
        {"field": "offence.date", "rule": "must not be in the future"}


def test_field_violation_is_immutable_and_comparable():
    a = FieldViolation("x", "y")
    assert a == FieldViolation("x", "y") and hash(a) == hash(FieldViolation("x", "y"))
    with pytest.raises(AttributeError):
        a.field = "z"


@pytest.mark.parametrize("cls, grpc_code, http_status", [
    (errors.ValidationFailed, "INVALID_ARGUMENT", 422),
    (errors.Unauthenticated, "UNAUTHENTICATED", 401),
    (errors.PermissionDenied, "PERMISSION_DENIED", 403),
    (errors.NotFound, "NOT_FOUND", 404),
    (errors.Conflict, "ALREADY_EXISTS", 409),
    (errors.FailedPrecondition, "FAILED_PRECONDITION", 409),
    (errors.Unavailable, "UNAVAILABLE", 503),
    (errors.MendError, "INTERNAL", 500),
])
def test_error_kinds_map_to_status_codes(cls, grpc_code, http_status):
    assert issubclass(cls, errors.MendError)
    assert (cls.grpc_code, cls.http_status) == (grpc_code, http_status)


def test_errors_carry_their_message():
    e = errors.NotFound("referral x not found")
    assert e.message == str(e) == "referral x not found"
