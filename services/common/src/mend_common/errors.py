"""Errors the service layer raises; entrypoints map them to gRPC codes and HTTP statuses.

Nothing here leaks internals: the message is meant for the caller.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    field: str   # dotted path, e.g. "participants[0].date_of_birth"
    rule: str    # what the value breaks, in plain words

    def as_dict(self) -> dict:
        return {"field": self.field, "rule": self.rule}


class MendError(Exception):
    grpc_code = "INTERNAL"
    http_status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ValidationFailed(MendError):
    grpc_code = "INVALID_ARGUMENT"
    http_status = 422

    def __init__(self, violations: list[FieldViolation], message: str = "the request is invalid"):
        super().__init__(message)
        self.violations = list(violations)

    def __str__(self) -> str:
        return "; ".join(f"{v.field}: {v.rule}" for v in self.violations) or self.message


class Unauthenticated(MendError):
    grpc_code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDenied(MendError):
    grpc_code = "PERMISSION_DENIED"
    http_status = 403


class NotFound(MendError):
    grpc_code = "NOT_FOUND"
    http_status = 404


class Conflict(MendError):
    grpc_code = "ALREADY_EXISTS"
    http_status = 409


class ConcurrentChange(MendError):
    """The record changed between reading and writing it; read it again and retry."""
    grpc_code = "ABORTED"
    http_status = 409


class FailedPrecondition(MendError):
    grpc_code = "FAILED_PRECONDITION"
    http_status = 409


class ConditionsNotMet(FailedPrecondition):
    """A state change refused because the record is not ready for it; each condition names what
    is missing, so the caller knows what to do first (gRPC: PreconditionFailure details)."""

    def __init__(self, action: str, missing: list[tuple[str, str]]):
        # missing: (condition, description), e.g. ("victim_consent", "no consent from the victim Ann Smith")
        super().__init__(f"{action}: " + "; ".join(description for _, description in missing))
        self.missing = list(missing)


class Unavailable(MendError):
    grpc_code = "UNAVAILABLE"
    http_status = 503


class Violations:
    """Collects every violation of a request, so the caller sees them all at once."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, rule: str) -> None:
        self.items.append(FieldViolation(field, rule))

    def __bool__(self) -> bool:
        return bool(self.items)

    def uuid(self, field: str, value) -> str:
        """value as a canonical UUID string, or "" with a violation: ids never reach SQL unchecked."""
        import uuid
        try:
            return str(uuid.UUID(str(value)))
        except (ValueError, TypeError, AttributeError):
            self.add(field, "must be a UUID")
            return ""

    def text(self, field: str, value, *, required: bool, limit: int) -> str:
        """value stripped; a violation if required and blank, longer than limit, or holding NUL
        (PostgreSQL cannot store it). Anything but a string counts as blank."""
        value = value if isinstance(value, str) else ""
        if required and not value.strip():
            self.add(field, "is required")
        if len(value) > limit:
            self.add(field, f"must be at most {limit} characters")
        if "\x00" in value:
            self.add(field, "must not contain NUL characters")
        return value.strip()

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationFailed(self.items)
