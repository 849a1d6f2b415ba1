"""Use cases of the referrals service. Entrypoints (gRPC, HTTP, nameko) translate and call these."""
from __future__ import annotations

import logging
import re
import uuid
from datetime import date, datetime, timezone
from typing import Callable

from sqlalchemy.exc import IntegrityError

from mend_common.auth import Principal, issue_api_key, secret_matches
from mend_common.envelope import Envelope, new_event
from mend_common.errors import Conflict, FieldViolation, NotFound, PermissionDenied, Unauthenticated, ValidationFailed, Violations
from prometheus_client import Counter

from ..domain.referral import STATUS_LADDER, Referral, StatusChange, case_event_change, parse_draft
from ..domain.vocabulary import AGENCY_KINDS, ReferralStatus

log = logging.getLogger(__name__)
SERVICE = "referrals"
REFERRALS_RECEIVED = Counter("mend_referrals_received_total", "Referrals accepted for processing", ["county"])
REFERRALS_REPLAYED = Counter("mend_referrals_replayed_total", "Repeated submissions answered from the first", ["county"])
REFERRAL_STATUS_CHANGES = Counter("mend_referral_status_changes_total", "Referral status changes", ["status"])

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
STAFF_READERS = ("coordinator", "manager", "auditor", "admin")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def submit_referral(uow_factory: Callable, principal: Principal, request_id: str, data: dict) -> tuple[Referral, bool]:
    """Store a referral and its referral_received event. Returns (referral, replayed)."""
    if principal.kind != "agency" or not principal.agency_id:
        raise PermissionDenied("only a partner agency's API key may submit referrals")
    violations = Violations()
    if not request_id:
        violations.add("request_id", "is required (the Idempotency-Key header over HTTP)")
    elif not REQUEST_ID_RE.match(request_id):
        violations.add("request_id", "must be 8-128 characters: letters, digits and . _ : -")
    county = data.get("county") if isinstance(data, dict) else None
    county = county.strip() if isinstance(county, str) else None
    if county and county not in principal.counties:
        violations.add("county", f"must be your agency's county ({', '.join(sorted(principal.counties))})")
    try:
        draft = parse_draft(data, today=_now().date())
    except ValidationFailed as failed:
        raise ValidationFailed(violations.items + failed.violations) from None
    violations.raise_if_any()

    referral = Referral(
        referral_id=str(uuid.uuid4()), agency_id=principal.agency_id, county=draft.county,
        agency_reference=draft.agency_reference, request_id=request_id, fingerprint=draft.fingerprint(),
        status=ReferralStatus.RECEIVED, received_at=_now(), draft=draft.to_dict())
    event = new_event(SERVICE, "referral_received", referral.county, {
        "referral_id": referral.referral_id,
        "agency_id": referral.agency_id,
        "received_at": referral.received_at.isoformat(),
        "referral": referral.draft,
    })
    try:
        with uow_factory.atomic() as uow:   # one round trip on PostgreSQL
            uow.referrals.add(referral)
            uow.publish(event)
            uow.audit(principal.label, "referral.submit", "referral", referral.referral_id, referral.county)
    except IntegrityError:
        # The optimistic insert hit a unique key: a replay, or a clash. Decide on a fresh read.
        return _resolve_duplicate(uow_factory, principal, referral), True
    REFERRALS_RECEIVED.labels(referral.county).inc()
    log.info("referral %s received from agency %s", referral.referral_id, referral.agency_id)
    return referral, False


def _resolve_duplicate(uow_factory, principal: Principal, attempted: Referral) -> Referral:
    with uow_factory() as uow:
        existing = uow.referrals.get_by_request(attempted.agency_id, attempted.request_id)
        if existing is None:
            clash = uow.referrals.get_by_reference(attempted.agency_id, attempted.agency_reference)
            if clash is not None:
                raise Conflict(f"agency_reference {attempted.agency_reference!r} was already used by referral "
                               f"{clash.referral_id}")
            raise Conflict("the referral clashes with one stored at the same moment; send it again")
        if existing.fingerprint != attempted.fingerprint:
            raise Conflict("this request id was already used for a different referral")
        uow.audit(principal.label, "referral.submit_replayed", "referral", existing.referral_id, existing.county)
    REFERRALS_REPLAYED.labels(existing.county).inc()
    return existing


def _visible(referral: Referral | None, principal: Principal) -> bool:
    if referral is None:
        return False
    if principal.kind == "agency":
        return referral.agency_id == principal.agency_id
    return principal.has_any_role(*STAFF_READERS) and referral.county in principal.counties


def get_referral(uow_factory: Callable, principal: Principal, referral_id: str) -> Referral:
    with uow_factory() as uow:
        referral = uow.referrals.get(referral_id) if _is_uuid(referral_id) else None
        visible = _visible(referral, principal)
        # A refused read is audited too (probing for others' data should leave a trace), but the
        # caller cannot tell another agency's or county's referral from a missing one.
        # The id as asked for, escaped: it may hold anything (a NUL byte cannot even be stored).
        asked = referral_id if _is_uuid(referral_id) else ascii(referral_id)[:64]
        uow.audit(principal.label, "referral.read" if visible else "referral.read_refused", "referral",
                  asked, referral.county if visible else None)
    if not visible:
        raise NotFound(f"referral {referral_id} not found")
    return referral


def list_referrals(uow_factory: Callable, principal: Principal, *, page_size: int, page_token: str,
                   status: str | None) -> tuple[list[Referral], str]:
    from ..adapters.repository import decode_page_token, encode_page_token
    violations = Violations()
    if page_size == 0:
        page_size = 50
    if not 1 <= page_size <= 200:
        violations.add("page_size", "must be between 1 and 200")
    after = None
    if page_token:
        after = decode_page_token(page_token)
        if after is None:
            violations.add("page_token", "is not a token this service issued")
    if status and status not in ReferralStatus.ALL:
        violations.add("status", f"must be one of: {', '.join(ReferralStatus.ALL)}")
    violations.raise_if_any()
    if principal.kind == "agency":
        if not principal.agency_id:  # never list unscoped
            raise PermissionDenied("an agency credential without an agency")
        agency_id, counties = principal.agency_id, None
    else:
        principal.require_role(*STAFF_READERS)
        agency_id, counties = None, principal.counties
    with uow_factory() as uow:
        items = uow.referrals.list(agency_id=agency_id, counties=counties, status=status, after=after,
                                   limit=page_size + 1)
        uow.audit(principal.label, "referral.list", "referral", None, None,
                  reason=f"{min(len(items), page_size)} referrals listed")
    token = ""
    if len(items) > page_size:
        items = items[:page_size]
        token = encode_page_token(items[-1].received_at, items[-1].referral_id)
    return items, token


def record_case_opened(uow_factory: Callable, envelope: Envelope, consumer: str) -> bool:
    """Handle one case_opened; returns whether the referral's status moved."""
    return bool(record_case_events(uow_factory, [envelope], consumer))


def record_cases_opened(uow_factory: Callable, envelopes: list[Envelope], consumer: str) -> set[str]:
    """A batch of case_opened events; see record_case_events."""
    return record_case_events(uow_factory, envelopes, consumer)


def record_case_events(uow_factory: Callable, envelopes: list[Envelope], consumer: str) -> set[str]:
    """Handle a batch of the cases service's events (case_opened, eligibility_decided,
    case_closed) in one transaction: each referral's status follows its case by the rules of
    domain.referral, which reach the same end state whatever order the events arrive in.
    Idempotent: returns the referrals whose status moved (not those of a redelivered event, nor
    a referral the rules leave where it is). A malformed event, or one for a referral this
    service never stored, fails the whole batch (nothing is written), so the worker retries its
    events one by one and that one alone ends in the dead-letter queue."""
    changes: dict[str, tuple[Envelope, StatusChange]] = {}
    for envelope in envelopes:
        if envelope.event_id not in changes:
            changes[envelope.event_id] = (envelope, case_event_change(envelope.type, envelope.payload))
    applied: list[tuple[Envelope, StatusChange]] = []
    with uow_factory() as uow:
        claimed = uow.claim_events(consumer, list(changes))
        fresh = [changes[event_id] for event_id in changes if event_id in claimed]
        by_transition: dict[tuple, list[tuple[Envelope, StatusChange]]] = {}
        for envelope, change in fresh:
            by_transition.setdefault(change.transition, []).append((envelope, change))
        at = _now()
        # One statement per transition. Lower rungs first: a referral that climbs twice in one
        # batch keeps both steps in its history (the end state is the same either way).
        for transition in sorted(by_transition, key=lambda t: STATUS_LADDER.index(t[1])):
            group = by_transition[transition]
            moved = uow.referrals.advance_status_many(
                [(change.referral_id, change.case_id, change.detail) for _, change in group], transition, at)
            for envelope, change in group:
                if change.referral_id in moved:      # moved by its first event in the group
                    moved.discard(change.referral_id)
                    applied.append((envelope, change))
        still = {change.referral_id for _, change in fresh} - {change.referral_id for _, change in applied}
        unknown = still - uow.referrals.existing(sorted(still))
        if unknown:
            envelope, change = next((e, c) for e, c in fresh if c.referral_id in unknown)
            raise LookupError(f"{envelope.type} for unknown referral {change.referral_id}")
        for envelope, change in applied:
            uow.audit("system:cases", f"referral.{change.transition[1]}", "referral", change.referral_id,
                      envelope.county, reason=change.note, correlation_id=envelope.correlation_id)
    for envelope, change in applied:
        REFERRAL_STATUS_CHANGES.labels(change.transition[1]).inc()
        log.info("referral %s now %s (%s, case %s)", change.referral_id, change.transition[1], change.note,
                 change.case_id, extra={"correlation_id": envelope.correlation_id})
    return {change.referral_id for _, change in applied}


# -- agencies and credentials ---------------------------------------------------------------
def _require_admin_for(principal: Principal, county: str) -> None:
    if principal.kind != "staff" or "admin" not in principal.roles:
        raise PermissionDenied("managing agencies needs the admin role")
    if county not in principal.counties:
        raise NotFound("no such county among yours")


def create_agency(uow_factory: Callable, principal: Principal, name: str, county: str, kind: str) -> dict:
    violations = Violations()
    name = (name or "").strip()
    if not 2 <= len(name) <= 200:
        violations.add("name", "must be 2-200 characters")
    if not re.fullmatch(r"[a-z][a-z0-9-]{1,63}", county or ""):
        violations.add("county", "must be a county code: lower-case letters, digits and hyphens")
    if kind not in AGENCY_KINDS:
        violations.add("kind", f"must be one of: {', '.join(AGENCY_KINDS)}")
    violations.raise_if_any()
    _require_admin_for(principal, county)
    agency = {"agency_id": str(uuid.uuid4()), "name": name, "county": county, "kind": kind, "active": True,
              "created_at": _now()}
    with uow_factory() as uow:
        if uow.agencies.find_by_name(county, name):
            raise Conflict(f"an agency called {name!r} already exists in {county}")
        uow.agencies.add(agency)
        uow.audit(principal.label, "agency.create", "agency", agency["agency_id"], county)
    return agency


def list_agencies(uow_factory: Callable, principal: Principal, county: str = "") -> list[dict]:
    if principal.kind != "staff" or not principal.has_any_role("admin", "manager", "coordinator", "auditor"):
        raise PermissionDenied("listing agencies needs a staff role")
    counties = principal.counties if not county else frozenset({county}) & principal.counties
    with uow_factory() as uow:
        found = uow.agencies.list(counties) if counties else []
        uow.audit(principal.label, "agency.list", "agency", None, county or None)
    return found


def issue_agency_key(uow_factory: Callable, principal: Principal, agency_id: str, label: str = "") -> tuple[str, str]:
    if len(label or "") > 200:
        raise ValidationFailed([FieldViolation("label", "must be at most 200 characters")])
    with uow_factory() as uow:
        agency = uow.agencies.get(agency_id) if _is_uuid(agency_id) else None
        if agency is None or principal.kind != "staff" or agency["county"] not in principal.counties:
            raise NotFound(f"agency {agency_id} not found")
        _require_admin_for(principal, agency["county"])
        issued = issue_api_key()
        uow.agencies.add_key({"key_id": issued.key_id, "agency_id": agency_id, "secret_hash": issued.secret_hash,
                              "label": label or "", "created_at": _now(), "revoked_at": None})
        uow.audit(principal.label, "api_key.issue", "api_key", issued.key_id, agency["county"])
    return issued.key_id, issued.api_key


def revoke_agency_key(uow_factory: Callable, principal: Principal, key_id: str) -> bool:
    with uow_factory() as uow:
        key = uow.agencies.get_key(key_id)
        if key is None or principal.kind != "staff" or key["county"] not in principal.counties:
            raise NotFound(f"api key {key_id} not found")
        _require_admin_for(principal, key["county"])
        revoked = uow.agencies.revoke_key(key_id, _now())
        uow.audit(principal.label, "api_key.revoke", "api_key", key_id, key["county"])
    return revoked


def authenticate_agency_key(uow_factory: Callable, key_id: str, secret: str) -> Principal:
    with uow_factory() as uow:
        key = uow.agencies.get_key(key_id)
    if key is None or key["revoked_at"] is not None or not key["active"] or not secret_matches(secret, key["secret_hash"]):
        raise Unauthenticated("the API key is not valid")
    return Principal(kind="agency", subject=key["agency_id"], roles=frozenset({"partner"}),
                     counties=frozenset({key["county"]}), name=key["agency_name"], agency_id=key["agency_id"])


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
        return True
    except (ValueError, TypeError, AttributeError):
        return False
