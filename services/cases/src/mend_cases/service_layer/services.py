"""Use cases of the cases service."""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from typing import Callable

from prometheus_client import Counter

from mend_common.auth import Principal
from mend_common.envelope import Envelope, new_event
from mend_common.errors import NotFound, PermissionDenied, Violations

from ..domain.case import CASE_READERS, STAGES, Case, InvalidReferral, open_case

log = logging.getLogger(__name__)
SERVICE = "cases"
CASES_OPENED = Counter("mend_cases_opened_total", "Cases opened from referrals", ["county"])


def open_case_for_referral(uow_factory: Callable, envelope: Envelope, consumer: str) -> Case | None:
    """Handle one referral_received. Returns the case, or None for a redelivery."""
    opened = open_cases_for_referrals(uow_factory, [envelope], consumer)
    return opened[0] if opened else None


def open_cases_for_referrals(uow_factory: Callable, envelopes: list[Envelope], consumer: str) -> list[Case]:
    """Handle a batch of referral_received events in one transaction: exactly one case per
    referral, however often or together its events arrive. Returns the cases opened (none for a
    redelivery). An event that cannot become a case fails the whole batch, so nothing is half
    written; the worker then handles each event of the batch on its own."""
    opened_at = datetime.now(timezone.utc)
    candidates: dict[str, tuple[Envelope, Case]] = {}
    for envelope in envelopes:
        if envelope.event_id not in candidates:
            candidates[envelope.event_id] = (envelope, _case_from(envelope, opened_at))
    with uow_factory() as uow:
        claimed = uow.claim_events(consumer, list(candidates))      # first delivery of each event only
        fresh = [candidates[event_id] for event_id in candidates if event_id in claimed]
        stored = uow.cases.add_many([case for _, case in fresh])     # one case per referral
        opened = [(envelope, case) for envelope, case in fresh if case.case_id in stored]
        for envelope, case in opened:
            uow.publish(new_event(SERVICE, "case_opened", case.county, {
                "case_id": case.case_id, "referral_id": case.referral_id, "stage": case.stage,
                "opened_at": case.opened_at.isoformat(),
            }, correlation_id=envelope.correlation_id))
            uow.audit("system:referrals", "case.open", "case", case.case_id, case.county,
                      reason=f"referral {case.referral_id} received", correlation_id=envelope.correlation_id)
    for envelope, case in opened:
        CASES_OPENED.labels(case.county).inc()
        log.info("case %s opened for referral %s", case.case_id, case.referral_id,
                 extra={"correlation_id": envelope.correlation_id})
    return [case for _, case in opened]


def _case_from(envelope: Envelope, opened_at: datetime) -> Case:
    payload = envelope.payload
    try:
        received_at = datetime.fromisoformat(payload["received_at"]) if payload.get("received_at") else envelope.occurred
    except (TypeError, ValueError):
        raise InvalidReferral(f"referral_received has a malformed received_at: {payload.get('received_at')!r}") from None
    return open_case(
        referral_id=payload.get("referral_id"), county=envelope.county,
        agency_id=str(payload.get("agency_id", "")), received_at=received_at,
        referral=payload.get("referral"), opened_at=opened_at)


def _require_staff(principal: Principal) -> None:
    if principal.kind != "staff" or not principal.has_any_role(*CASE_READERS, "facilitator"):
        raise PermissionDenied("case files are for coordinators, facilitators, managers and auditors")


def get_case(uow_factory: Callable, principal: Principal, case_id: str) -> Case:
    _require_staff(principal)
    try:
        uuid.UUID(case_id)
    except (ValueError, TypeError):
        raise NotFound(f"case {case_id} not found") from None
    with uow_factory() as uow:
        case = uow.cases.get(case_id)
        visible = case is not None and case.visible_to(principal)
        # A refused read is audited too, but another county's case, or one not allocated to this
        # facilitator, looks missing to the caller.
        uow.audit(principal.label, "case.read" if visible else "case.read_refused", "case", case_id,
                  case.county if visible else None)
    if not visible:
        raise NotFound(f"case {case_id} not found")
    return case


def list_cases(uow_factory: Callable, principal: Principal, *, county: str, stage: str | None, page_size: int,
               page_token: str) -> tuple[list[Case], str]:
    from ..adapters.repository import decode_page_token, encode_page_token
    _require_staff(principal)
    v = Violations()
    page_size = page_size or 50
    if not 1 <= page_size <= 200:
        v.add("page_size", "must be between 1 and 200")
    if stage and stage not in STAGES:
        v.add("stage", f"must be one of: {', '.join(STAGES)}")
    after = decode_page_token(page_token) if page_token else None
    if page_token and after is None:
        v.add("page_token", "is not a token this service issued")
    v.raise_if_any()
    if county and county not in principal.counties:
        raise NotFound(f"county {county} not found among yours")
    if not principal.has_any_role(*CASE_READERS):
        return [], ""  # facilitators: allocation arrives with the case lifecycle; none allocated yet
    counties = [county] if county else sorted(principal.counties)
    with uow_factory() as uow:
        items = uow.cases.list(counties=counties, stage=stage, after=after, limit=page_size + 1)
        uow.audit(principal.label, "case.list", "case", None, county or None,
                  reason=f"{min(len(items), page_size)} cases listed")
    token = ""
    if len(items) > page_size:
        items = items[:page_size]
        token = encode_page_token(items[-1].opened_at, items[-1].case_id)
    return items, token
