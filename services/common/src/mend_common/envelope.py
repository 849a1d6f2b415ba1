"""The event envelope every domain event travels in."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .logs import current_correlation_id, new_correlation_id


class InvalidEnvelope(ValueError):
    pass


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Envelope:
    event_id: str
    type: str
    schema_version: int
    occurred_at: str           # ISO 8601, UTC
    county: str
    correlation_id: str
    source: str                # the publishing service
    payload: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies the payload (a whole referral), which cost half
        # the CPU of an intake call. The payload is only serialised from here, never mutated.
        return {"event_id": self.event_id, "type": self.type, "schema_version": self.schema_version,
                "occurred_at": self.occurred_at, "county": self.county, "correlation_id": self.correlation_id,
                "source": self.source, "payload": self.payload}

    @property
    def occurred(self) -> datetime:
        return datetime.fromisoformat(self.occurred_at)

    @classmethod
    def from_dict(cls, data: Any) -> "Envelope":
        if not isinstance(data, dict):
            raise InvalidEnvelope("an event body must be a JSON object")
        missing = [k for k in ("event_id", "type", "schema_version", "occurred_at", "county", "payload", "source") if k not in data]
        if missing:
            raise InvalidEnvelope(f"event envelope lacks {', '.join(missing)}")
        if not isinstance(data["payload"], dict):
            raise InvalidEnvelope("event payload must be a JSON object")
        try:
            uuid.UUID(str(data["event_id"]))
            datetime.fromisoformat(str(data["occurred_at"]))
            version = int(data["schema_version"])
        except (ValueError, TypeError) as exc:
            raise InvalidEnvelope(f"event envelope is malformed: {exc}") from None
        return cls(
            event_id=str(data["event_id"]),
            type=str(data["type"]),
            schema_version=version,
            occurred_at=str(data["occurred_at"]),
            county=str(data["county"]),
            correlation_id=str(data.get("correlation_id") or ""),
            source=str(data["source"]),
            payload=data["payload"],
        )


def new_event(source: str, type: str, county: str, payload: dict[str, Any], *,
              schema_version: int = 1, correlation_id: str | None = None,
              occurred_at: datetime | None = None) -> Envelope:
    return Envelope(
        event_id=str(uuid.uuid4()),
        type=type,
        schema_version=schema_version,
        occurred_at=(occurred_at or utcnow()).isoformat(),
        county=county,
        correlation_id=correlation_id or current_correlation_id() or new_correlation_id(),
        source=source,
        payload=payload,
    )
