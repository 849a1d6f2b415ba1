"""The referrals service layer against an in-memory unit of work: no broker, no database."""
from __future__ import annotations

import copy
import uuid
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import IntegrityError

from mend_common.auth import Principal, split_api_key
from mend_common.testing.fakes import FakePlatformStore, FakePlatformUnitOfWork, FakeUnitsOfWork
from mend_common.envelope import new_event
from mend_common.errors import Conflict, NotFound, PermissionDenied, Unauthenticated, ValidationFailed
from mend_referrals.domain.referral import parse_draft
from mend_referrals.service_layer import services


# -- fakes ----------------------------------------------------------------------------------
class FakeStore(FakePlatformStore):
    """What the database would hold, shared by every unit of work of one test."""

    def __init__(self):
        super().__init__()
        self.referrals: dict[str, object] = {}
        self.history: dict[str, list[dict]] = {}
        self.agencies: dict[str, dict] = {}
        self.keys: dict[str, dict] = {}


class FakeReferralRepository:
    def __init__(self, store: FakeStore):
        self.store = store

    def add(self, referral) -> None:
        for other in self.store.referrals.values():
            if other.agency_id == referral.agency_id and (
                    other.request_id == referral.request_id or other.agency_reference == referral.agency_reference):
                raise IntegrityError("x", {}, Exception())
        self.store.referrals[referral.referral_id] = copy.deepcopy(referral)
        self.store.history[referral.referral_id] = []

    def _out(self, referral, with_history: bool):
        referral = copy.deepcopy(referral)
        if with_history:
            referral.history = [{"status": "received", "at": referral.received_at, "detail": "referral received"},
                                *copy.deepcopy(self.store.history[referral.referral_id])]
        return referral

    def get(self, referral_id, *, with_history=True):
        found = self.store.referrals.get(referral_id)
        return self._out(found, with_history) if found else None

    def get_by_request(self, agency_id, request_id):
        for r in self.store.referrals.values():
            if r.agency_id == agency_id and r.request_id == request_id:
                return self._out(r, True)
        return None

    def get_by_reference(self, agency_id, agency_reference):
        for r in self.store.referrals.values():
            if r.agency_id == agency_id and r.agency_reference == agency_reference:
                return self._out(r, False)
        return None

    def list(self, *, agency_id, counties, status, after, limit):
        rows = [r for r in self.store.referrals.values()
                if (agency_id is None or r.agency_id == agency_id)
                and (counties is None or r.county in counties)
                and (not status or r.status == status)
                and (after is None or (r.received_at, r.referral_id) < after)]
        rows.sort(key=lambda r: (r.received_at, r.referral_id), reverse=True)
        return [self._out(r, False) for r in rows[:limit]]

    def status_of(self, referral_id):
        found = self.store.referrals.get(referral_id)
        return (found.status, found.county) if found else None

    def advance_status(self, referral_id, transition, at, detail, case_id=None):
        from_status, to_status = transition
        from_statuses = (from_status,) if isinstance(from_status, str) else tuple(from_status)
        current = self.store.referrals.get(referral_id)
        if current is None or current.status not in from_statuses:
            return None
        self.store.referrals[referral_id] = replace(current, status=to_status, case_id=case_id or current.case_id)
        self.store.history[referral_id].append({"status": to_status, "at": at, "detail": detail})
        return current.county


    def advance_status_many(self, moves, transition, at):
        return {rid for rid, case_id, detail in moves if self.advance_status(rid, transition, at, detail, case_id)}

    def existing(self, referral_ids):
        return {rid for rid in referral_ids if rid in self.store.referrals}


class FakeAgencyRepository:
    def __init__(self, store: FakeStore):
        self.store = store

    def add(self, agency):
        self.store.agencies[agency["agency_id"]] = dict(agency)

    def get(self, agency_id):
        found = self.store.agencies.get(agency_id)
        return dict(found) if found else None

    def find_by_name(self, county, name):
        return next((dict(a) for a in self.store.agencies.values() if a["county"] == county and a["name"] == name),
                    None)

    def list(self, counties):
        return sorted((dict(a) for a in self.store.agencies.values() if a["county"] in counties),
                      key=lambda a: (a["county"], a["name"]))

    def add_key(self, key):
        self.store.keys[key["key_id"]] = dict(key)

    def get_key(self, key_id):
        key = self.store.keys.get(key_id)
        if key is None:
            return None
        agency = self.store.agencies[key["agency_id"]]
        return dict(key, county=agency["county"], agency_name=agency["name"], active=agency["active"])

    def revoke_key(self, key_id, at):
        key = self.store.keys.get(key_id)
        if key is None or key["revoked_at"] is not None:
            return False
        key["revoked_at"] = at
        return True


class FakeUnitOfWork(FakePlatformUnitOfWork):
    def __init__(self, store: FakeStore):
        super().__init__(store)
        self.referrals = FakeReferralRepository(store)
        self.agencies = FakeAgencyRepository(store)


# -- helpers --------------------------------------------------------------------------------
@pytest.fixture
def store():
    return FakeStore()


@pytest.fixture
def uow(store):
    return FakeUnitsOfWork(lambda: FakeUnitOfWork(store), {"referrals": {"advance_status"}})


AGENCY_A = str(uuid.uuid4())
AGENCY_B = str(uuid.uuid4())


def agency(agency_id=AGENCY_A, county="cumbria") -> Principal:
    return Principal(kind="agency", subject=agency_id, roles=frozenset({"partner"}), counties=frozenset({county}),
                     agency_id=agency_id)


def staff(*roles, counties=("cumbria",), subject="u1") -> Principal:
    return Principal(kind="staff", subject=subject, roles=frozenset(roles or ("coordinator",)),
                     counties=frozenset(counties))


def draft(reference="CUM-0001", county="cumbria", **changes) -> dict:
    data = {
        "agency_reference": reference, "county": county,
        "offence": {"type": "burglary dwelling", "category": "burglary", "date": "2025-01-10"},
        "initiated_by": "victim_led",
        "participants": [{"role": "victim", "given_name": "Ann", "family_name": "Smith", "age": 40,
                          "contact": {"email": "ann@example.org", "preferred_channel": "email"}},
                         {"role": "responsible_person", "given_name": "Bob", "age": 19}],
    }
    data.update(changes)
    return data


def submit(uow, principal=None, request_id="req-00000001", data=None):
    return services.submit_referral(uow, principal or agency(), request_id, data if data is not None else draft())


def fields_of(exc_info) -> set[str]:
    return {v.field for v in exc_info.value.violations}


# -- submit ---------------------------------------------------------------------------------
def test_submit_stores_the_referral_with_one_event_and_one_audit_record(uow, store):
    referral, replayed = submit(uow)

    assert replayed is False
    assert referral.status == "received"
    assert referral.agency_id == AGENCY_A and referral.county == "cumbria"
    assert referral.agency_reference == "CUM-0001" and referral.request_id == "req-00000001"
    expected = parse_draft(draft(), today=datetime.now(timezone.utc).date())
    assert referral.fingerprint == expected.fingerprint()
    assert set(store.referrals) == {referral.referral_id}
    assert store.referrals[referral.referral_id].draft == expected.to_dict()

    [event] = store.events
    assert event.type == "referral_received" and event.source == "referrals" and event.county == "cumbria"
    assert event.payload["referral_id"] == referral.referral_id
    assert event.payload["agency_id"] == AGENCY_A
    assert event.payload["referral"] == expected.to_dict()          # the full draft travels with the event
    assert event.payload["referral"]["participants"][0]["contact"]["email"] == "ann@example.org"
    assert datetime.fromisoformat(event.payload["received_at"]) == referral.received_at
    uuid.UUID(event.event_id)

    assert store.audits == [{"principal": f"agency:{AGENCY_A}", "action": "referral.submit",
                             "resource_type": "referral", "resource_id": referral.referral_id,
                             "county": "cumbria", "reason": None}]
    assert store.commits == 1


def test_same_request_id_and_same_payload_is_a_replay(uow, store):
    first, _ = submit(uow)
    again, replayed = submit(uow)

    assert replayed is True
    assert again.referral_id == first.referral_id
    assert again.received_at == first.received_at
    assert len(store.referrals) == 1
    assert len(store.events) == 1, "a replay must not publish a second referral_received"
    assert [a["action"] for a in store.audits] == ["referral.submit", "referral.submit_replayed"]


def test_replay_is_recognised_by_content_not_by_layout(uow, store):
    first, _ = submit(uow)
    data = draft(reference="  CUM-0001 ")
    data = dict(reversed(list(data.items())))                      # other key order, untrimmed text
    again, replayed = submit(uow, data=data)
    assert replayed and again.referral_id == first.referral_id
    assert len(store.events) == 1


def test_same_request_id_with_a_different_payload_is_a_conflict(uow, store):
    submit(uow)
    with pytest.raises(Conflict, match="request id was already used"):
        submit(uow, data=draft(reason="a different story"))
    assert len(store.referrals) == 1 and len(store.events) == 1


def test_same_agency_reference_with_a_new_request_id_is_a_conflict(uow, store):
    first, _ = submit(uow)
    with pytest.raises(Conflict) as info:
        submit(uow, request_id="req-00000002")
    assert "CUM-0001" in info.value.message and first.referral_id in info.value.message
    assert len(store.referrals) == 1 and len(store.events) == 1


def test_uniqueness_is_per_agency(uow, store):
    mine, _ = submit(uow, agency(AGENCY_A))
    theirs, replayed = submit(uow, agency(AGENCY_B))
    assert not replayed and theirs.referral_id != mine.referral_id
    assert len(store.referrals) == 2 and len(store.events) == 2


def test_a_new_request_id_and_reference_is_a_second_referral(uow, store):
    submit(uow)
    second, replayed = submit(uow, request_id="req-00000002", data=draft(reference="CUM-0002"))
    assert not replayed
    assert len(store.referrals) == 2 and len(store.events) == 2


@pytest.mark.parametrize("principal", [
    staff("coordinator"), staff("admin"),
    Principal(kind="agency", subject="x", roles=frozenset({"partner"}), counties=frozenset({"cumbria"})),
])
def test_only_an_agency_key_may_submit(uow, store, principal):
    with pytest.raises(PermissionDenied):
        submit(uow, principal)
    assert not store.referrals and not store.events and not store.audits


def test_county_must_be_the_agencys(uow, store):
    with pytest.raises(ValidationFailed) as info:
        submit(uow, data=draft(county="lancashire"))
    assert fields_of(info) == {"county"}
    assert "cumbria" in info.value.violations[0].rule
    assert not store.referrals and not store.events


@pytest.mark.parametrize("request_id, rule", [
    ("", "is required"),
    ("short", "must be 8-128 characters"),
    ("has spaces in it", "must be 8-128 characters"),
    ("x" * 129, "must be 8-128 characters"),
    ("req/0000001", "must be 8-128 characters"),
])
def test_bad_request_id_is_named(uow, store, request_id, rule):
    with pytest.raises(ValidationFailed) as info:
        submit(uow, request_id=request_id)
    assert [(v.field, rule in v.rule) for v in info.value.violations] == [("request_id", True)]
    assert not store.referrals


def test_request_id_and_draft_violations_are_reported_together(uow, store):
    with pytest.raises(ValidationFailed) as info:
        submit(uow, request_id="bad", data=draft(county="lancashire", initiated_by="nobody"))
    assert fields_of(info) == {"request_id", "county", "initiated_by"}


def test_a_body_that_is_not_an_object_is_a_validation_error(uow, store):
    with pytest.raises(ValidationFailed):
        services.submit_referral(uow, agency(), "req-00000001", ["not", "an", "object"])
    assert not store.referrals


# -- reading --------------------------------------------------------------------------------
def test_the_submitting_agency_reads_its_referral_with_history(uow, store):
    referral, _ = submit(uow)
    got = services.get_referral(uow, agency(), referral.referral_id)
    assert got.referral_id == referral.referral_id
    assert [h["status"] for h in got.history] == ["received"]
    assert store.audits[-1]["action"] == "referral.read"
    assert store.audits[-1]["resource_id"] == referral.referral_id


def test_another_agency_gets_not_found(uow, store):
    referral, _ = submit(uow)
    audits_before = len(store.audits)
    with pytest.raises(NotFound):
        services.get_referral(uow, agency(AGENCY_B), referral.referral_id)
    # The refusal is audited, and the record does not reveal the referral's county.
    assert [(a["action"], a["resource_id"], a["county"]) for a in store.audits[audits_before:]] == [
        ("referral.read_refused", referral.referral_id, None)]


@pytest.mark.parametrize("referral_id", ["", "not-a-uuid", str(uuid.uuid4())])
def test_missing_or_malformed_id_is_not_found(uow, referral_id):
    with pytest.raises(NotFound):
        services.get_referral(uow, agency(), referral_id)


@pytest.mark.parametrize("role", ["coordinator", "manager", "auditor", "admin"])
def test_staff_readers_of_the_county_can_read(uow, store, role):
    referral, _ = submit(uow)
    principal = staff(role)
    assert services.get_referral(uow, principal, referral.referral_id).referral_id == referral.referral_id
    assert store.audits[-1]["principal"] == "staff:u1"


@pytest.mark.parametrize("principal", [
    staff("coordinator", counties=("lancashire",)),
    staff("admin", counties=("lancashire", "merseyside")),
    staff("facilitator"),                         # not a referral reader, even in the county
])
def test_other_staff_get_not_found(uow, principal):
    referral, _ = submit(uow)
    with pytest.raises(NotFound):
        services.get_referral(uow, principal, referral.referral_id)


def _seed(uow, agency_id, county, n, start=0):
    out = []
    for i in range(start, start + n):
        referral, _ = submit(uow, agency(agency_id, county), request_id=f"req-{agency_id[:8]}-{i:04d}",
                             data=draft(reference=f"R-{i:04d}", county=county))
        out.append(referral)
    return out


def test_list_is_scoped_to_the_agency_or_the_staff_counties(uow):
    agency_c = str(uuid.uuid4())
    mine = _seed(uow, AGENCY_A, "cumbria", 3)
    neighbour = _seed(uow, AGENCY_B, "cumbria", 2)
    far = _seed(uow, agency_c, "lancashire", 2)

    items, token = services.list_referrals(uow, agency(), page_size=0, page_token="", status=None)
    assert {r.referral_id for r in items} == {r.referral_id for r in mine} and token == ""

    items, _ = services.list_referrals(uow, staff("coordinator"), page_size=0, page_token="", status=None)
    assert {r.referral_id for r in items} == {r.referral_id for r in mine + neighbour}

    items, _ = services.list_referrals(uow, staff("manager", counties=("cumbria", "lancashire")), page_size=0,
                                       page_token="", status=None)
    assert len(items) == 7

    items, _ = services.list_referrals(uow, staff("auditor", counties=("lancashire",)), page_size=0,
                                       page_token="", status=None)
    assert {r.referral_id for r in items} == {r.referral_id for r in far}


def test_facilitators_may_not_list_referrals(uow):
    with pytest.raises(PermissionDenied):
        services.list_referrals(uow, staff("facilitator"), page_size=10, page_token="", status=None)


def test_pagination_walks_every_referral_once_newest_first(uow):
    seeded = _seed(uow, AGENCY_A, "cumbria", 7)
    seen, token, pages = [], "", 0
    while True:
        items, token = services.list_referrals(uow, agency(), page_size=3, page_token=token, status=None)
        pages += 1
        assert len(items) <= 3
        seen += items
        if not token:
            break
    assert pages == 3
    assert [r.referral_id for r in seen] == [r.referral_id for r in
                                             sorted(seeded, key=lambda r: (r.received_at, r.referral_id),
                                                    reverse=True)]


def test_a_full_last_page_has_no_next_token(uow):
    _seed(uow, AGENCY_A, "cumbria", 4)
    items, token = services.list_referrals(uow, agency(), page_size=4, page_token="", status=None)
    assert len(items) == 4 and token == ""


@pytest.mark.parametrize("page_size, ok", [(1, True), (200, True), (201, False), (-1, False), (10_000, False)])
def test_page_size_bounds(uow, page_size, ok):
    if ok:
        services.list_referrals(uow, agency(), page_size=page_size, page_token="", status=None)
    else:
        with pytest.raises(ValidationFailed) as info:
            services.list_referrals(uow, agency(), page_size=page_size, page_token="", status=None)
        assert fields_of(info) == {"page_size"}


@pytest.mark.parametrize("token", ["garbage", "!!!", "bm90IGpzb24=", "WzEsMl0="])   # "not json", "[1,2]"
def test_bad_page_token_is_a_validation_error(uow, token):
    with pytest.raises(ValidationFailed) as info:
        services.list_referrals(uow, agency(), page_size=10, page_token=token, status=None)
    assert fields_of(info) == {"page_token"}


def test_list_filters_by_status_and_rejects_unknown_status(uow, store):
    first, second = _seed(uow, AGENCY_A, "cumbria", 2)
    services.record_case_opened(uow, _case_opened(first.referral_id), "referrals.on_case_opened")
    items, _ = services.list_referrals(uow, agency(), page_size=10, page_token="", status="case_opened")
    assert [r.referral_id for r in items] == [first.referral_id]
    items, _ = services.list_referrals(uow, agency(), page_size=10, page_token="", status="received")
    assert [r.referral_id for r in items] == [second.referral_id]
    with pytest.raises(ValidationFailed) as info:
        services.list_referrals(uow, agency(), page_size=10, page_token="", status="lost")
    assert fields_of(info) == {"status"}


def test_all_list_violations_are_reported_at_once(uow):
    with pytest.raises(ValidationFailed) as info:
        services.list_referrals(uow, agency(), page_size=999, page_token="nope", status="lost")
    assert fields_of(info) == {"page_size", "page_token", "status"}


# -- case_opened ------------------------------------------------------------------------------
def _case_opened(referral_id, case_id=None, event_id=None):
    event = new_event("cases", "case_opened", "cumbria",
                      {"referral_id": referral_id, "case_id": case_id or str(uuid.uuid4())})
    return replace(event, event_id=event_id) if event_id else event


def test_case_opened_moves_the_status_once(uow, store):
    referral, _ = submit(uow)
    event = _case_opened(referral.referral_id)
    assert services.record_case_opened(uow, event, "referrals.on_case_opened") is True

    got = services.get_referral(uow, agency(), referral.referral_id)
    assert got.status == "case_opened"
    assert got.case_id == event.payload["case_id"]
    assert [h["status"] for h in got.history] == ["received", "case_opened"]
    assert any(a["action"] == "referral.case_opened" for a in store.audits)


def test_a_redelivered_case_opened_is_ignored(uow, store):
    referral, _ = submit(uow)
    event = _case_opened(referral.referral_id)
    assert services.record_case_opened(uow, event, "referrals.on_case_opened") is True
    assert services.record_case_opened(uow, event, "referrals.on_case_opened") is False
    assert [h["status"] for h in services.get_referral(uow, agency(), referral.referral_id).history] == \
        ["received", "case_opened"]
    assert sum(a["action"] == "referral.case_opened" for a in store.audits) == 1


def test_a_second_case_opened_event_does_not_move_the_status_again(uow, store):
    referral, _ = submit(uow)
    services.record_case_opened(uow, _case_opened(referral.referral_id), "c")
    assert services.record_case_opened(uow, _case_opened(referral.referral_id), "c") is False  # nothing moved
    got = services.get_referral(uow, agency(), referral.referral_id)
    assert [h["status"] for h in got.history] == ["received", "case_opened"]


def test_case_opened_for_a_later_status_changes_nothing(uow, store):
    referral, _ = submit(uow)
    with FakeUnitOfWork(store) as u:
        u.referrals.advance_status(referral.referral_id, ("received", "accepted"), datetime.now(timezone.utc), "accepted")
    services.record_case_opened(uow, _case_opened(referral.referral_id), "c")
    assert store.referrals[referral.referral_id].status == "accepted"


def test_case_opened_for_an_unknown_referral_fails_and_can_be_retried(uow, store):
    event = _case_opened(str(uuid.uuid4()))
    with pytest.raises(LookupError):
        services.record_case_opened(uow, event, "c")
    assert ("c", event.event_id) not in store.claimed       # rolled back with the failure


@pytest.mark.parametrize("payload", [{}, {"referral_id": str(uuid.uuid4())}, {"case_id": str(uuid.uuid4())}])
def test_case_opened_without_ids_is_rejected(uow, payload):
    event = new_event("cases", "case_opened", "cumbria", payload)
    with pytest.raises(ValueError):
        services.record_case_opened(uow, event, "c")


def test_a_batch_of_case_opened_moves_each_referral_once(uow, store):
    a, _ = submit(uow)
    b, _ = submit(uow, request_id="req-00000002", data=draft(reference="CUM-0002"))
    ea, eb = _case_opened(a.referral_id), _case_opened(b.referral_id)
    moved = services.record_cases_opened(uow, [ea, eb, ea], "c")
    assert moved == {a.referral_id, b.referral_id}
    assert store.commits >= 1 and store.referrals[a.referral_id].case_id == ea.payload["case_id"]
    assert sum(x["action"] == "referral.case_opened" for x in store.audits) == 2
    assert services.record_cases_opened(uow, [ea, eb], "c") == set()     # a redelivered batch


def test_an_unknown_referral_fails_its_whole_batch_and_writes_nothing(uow, store):
    known, _ = submit(uow)
    good, bad = _case_opened(known.referral_id), _case_opened(str(uuid.uuid4()))
    with pytest.raises(LookupError):
        services.record_cases_opened(uow, [good, bad], "c")
    assert store.referrals[known.referral_id].status == "received" and not store.claimed
    assert services.record_case_opened(uow, good, "c") is True          # alone, as the worker retries it


# -- eligibility_decided and case_closed: the status follows the case -------------------------
CASE_ID = str(uuid.uuid4())
STATUSES = ("received", "case_opened", "accepted", "closed", "rejected")


def _eligibility(referral_id, decision="accepted", reason="", case_id=CASE_ID, **changes):
    payload = {"case_id": case_id, "referral_id": referral_id, "decision": decision, "reason": reason,
               "decided_at": "2026-05-01T09:30:00+00:00", **changes}
    return new_event("cases", "eligibility_decided", "cumbria", payload)


def _closed(referral_id, reason="completed", after_rejection=False, case_id=CASE_ID, **changes):
    payload = {"case_id": case_id, "referral_id": referral_id, "reason": reason, "after_rejection": after_rejection,
               "closed_at": "2026-06-01T16:00:00+00:00", **changes}
    return new_event("cases", "case_closed", "cumbria", payload)


def _put_at(store, referral_id, status):
    store.referrals[referral_id] = replace(store.referrals[referral_id], status=status)


EVENT_KINDS = {
    "eligibility accepted": lambda rid: _eligibility(rid, "accepted"),
    "eligibility rejected": lambda rid: _eligibility(rid, "rejected", "the offence is outside the scheme"),
    "closed after rejection": lambda rid: _closed(rid, "unsuitable", after_rejection=True),
    "closed": lambda rid: _closed(rid, "completed"),
}
# The rules of the brief, written out here independently of domain.referral: where each kind of
# event takes a referral from each status.
EXPECTED = {
    "eligibility accepted": {"received": "accepted", "case_opened": "accepted", "accepted": "accepted",
                             "closed": "closed", "rejected": "rejected"},
    "eligibility rejected": {s: "rejected" for s in STATUSES},
    "closed after rejection": {s: "rejected" for s in STATUSES},
    "closed": {"received": "closed", "case_opened": "closed", "accepted": "closed", "closed": "closed",
               "rejected": "rejected"},
}


@pytest.mark.parametrize("start", STATUSES)
@pytest.mark.parametrize("kind", list(EVENT_KINDS))
def test_each_rule_moves_the_referral_from_each_status(uow, store, kind, start):
    referral, _ = submit(uow)
    _put_at(store, referral.referral_id, start)
    event = EVENT_KINDS[kind](referral.referral_id)

    moved = services.record_case_events(uow, [event], "c")

    expected = EXPECTED[kind][start]
    assert store.referrals[referral.referral_id].status == expected
    assert moved == ({referral.referral_id} if expected != start else set())
    history = [h["status"] for h in store.history[referral.referral_id]]
    assert history == ([expected] if expected != start else [])
    audits = [a for a in store.audits if a["resource_id"] == referral.referral_id and a["principal"] == "system:cases"]
    assert [a["action"] for a in audits] == ([f"referral.{expected}"] if expected != start else [])
    if audits:
        assert audits[0]["correlation_id"] == event.correlation_id and audits[0]["county"] == "cumbria"
    assert ("c", event.event_id) in store.claimed       # claimed even when the rules left it where it was


def test_every_rule_climbs_the_status_ladder():
    """Why the order of events does not matter: each rule moves up to its status from every
    status below it, and from none above."""
    from mend_referrals.domain import referral as rules
    assert set(rules.STATUS_LADDER) == set(STATUSES)
    for transition in (rules.CASE_OPENED_TRANSITION, rules.ELIGIBILITY_ACCEPTED_TRANSITION,
                       rules.ELIGIBILITY_REJECTED_TRANSITION, rules.CASE_CLOSED_AFTER_REJECTION_TRANSITION,
                       rules.CASE_CLOSED_TRANSITION):
        from_statuses, to_status = transition
        from_statuses = (from_statuses,) if isinstance(from_statuses, str) else from_statuses
        below = rules.STATUS_LADDER[:rules.STATUS_LADDER.index(to_status)]
        assert set(from_statuses) == set(below)
        # CASE_OPENED_TRANSITION is written as one status: the ladder's first rung
        assert len(from_statuses) == len(below)


def test_a_rejection_reason_reaches_the_referrer_in_the_history(uow, store):
    referral, _ = submit(uow)
    services.record_case_opened(uow, _case_opened(referral.referral_id, CASE_ID), "c")
    services.record_case_events(uow, [_eligibility(referral.referral_id, "rejected",
                                                   "  victim declined\x00 to take part  ")], "e")

    got = services.get_referral(uow, agency(), referral.referral_id)
    assert got.status == "rejected"
    assert [h["status"] for h in got.history] == ["received", "case_opened", "rejected"]
    assert got.history[-1]["detail"] == "not accepted for restorative justice: victim declined to take part"
    [audit] = [a for a in store.audits if a["action"] == "referral.rejected"]
    assert "victim" not in audit["reason"]          # free text stays out of the audit trail


def test_a_closure_names_its_reason_in_the_history(uow, store):
    referral, _ = submit(uow)
    services.record_case_events(uow, [_eligibility(referral.referral_id, "accepted")], "e")
    services.record_case_events(uow, [_closed(referral.referral_id, "unable_to_contact")], "x")
    got = services.get_referral(uow, agency(), referral.referral_id)
    assert [h["status"] for h in got.history] == ["received", "accepted", "closed"]
    assert got.history[-1]["detail"] == f"case {CASE_ID} closed (unable to contact)"


def test_an_eligibility_decision_before_case_opened_sets_the_case_id(uow, store):
    referral, _ = submit(uow)
    services.record_case_events(uow, [_eligibility(referral.referral_id, "accepted")], "e")
    assert store.referrals[referral.referral_id].case_id == CASE_ID
    assert services.record_case_opened(uow, _case_opened(referral.referral_id, CASE_ID), "c") is False
    assert store.referrals[referral.referral_id].status == "accepted"
    assert store.referrals[referral.referral_id].case_id == CASE_ID


def test_a_later_event_keeps_the_case_id_case_opened_set(uow, store):
    referral, _ = submit(uow)
    services.record_case_opened(uow, _case_opened(referral.referral_id, CASE_ID), "c")
    services.record_case_events(uow, [_closed(referral.referral_id)], "x")
    assert store.referrals[referral.referral_id].case_id == CASE_ID


@pytest.mark.parametrize("kind", list(EVENT_KINDS))
def test_a_redelivered_event_is_a_no_op(uow, store, kind):
    referral, _ = submit(uow)
    event = EVENT_KINDS[kind](referral.referral_id)
    assert services.record_case_events(uow, [event], "c") == {referral.referral_id}
    status, audits = store.referrals[referral.referral_id].status, len(store.audits)
    history = copy.deepcopy(store.history[referral.referral_id])

    assert services.record_case_events(uow, [event], "c") == set()
    assert services.record_case_events(uow, [event, event], "c") == set()
    assert store.referrals[referral.referral_id].status == status
    assert store.history[referral.referral_id] == history and len(store.audits) == audits


def test_a_batch_follows_each_referral_with_each_events_correlation_id(uow, store):
    a, _ = submit(uow)
    b, _ = submit(uow, request_id="req-00000002", data=draft(reference="CUM-0002"))
    c, _ = submit(uow, request_id="req-00000003", data=draft(reference="CUM-0003"))
    _put_at(store, c.referral_id, "rejected")
    ea, eb, ec = _eligibility(a.referral_id, "accepted"), _eligibility(b.referral_id, "rejected", "no"), \
        _eligibility(c.referral_id, "accepted")

    moved = services.record_case_events(uow, [ea, eb, ec, ea], "e")

    assert moved == {a.referral_id, b.referral_id}
    assert {rid: store.referrals[rid].status for rid in (a.referral_id, b.referral_id, c.referral_id)} == {
        a.referral_id: "accepted", b.referral_id: "rejected", c.referral_id: "rejected"}
    audits = {x["resource_id"]: x for x in store.audits if x["principal"] == "system:cases"}
    assert set(audits) == {a.referral_id, b.referral_id}
    assert audits[a.referral_id]["correlation_id"] == ea.correlation_id
    assert audits[b.referral_id]["correlation_id"] == eb.correlation_id
    assert {(cons, e) for cons, e in store.claimed} == {("e", ea.event_id), ("e", eb.event_id), ("e", ec.event_id)}


def test_two_events_for_one_referral_in_one_batch_climb_in_order(uow, store):
    referral, _ = submit(uow)
    rejected, accepted = _eligibility(referral.referral_id, "rejected", "no"), _eligibility(referral.referral_id)
    assert services.record_case_events(uow, [rejected, accepted], "e") == {referral.referral_id}
    assert store.referrals[referral.referral_id].status == "rejected"
    assert [h["status"] for h in store.history[referral.referral_id]] == ["accepted", "rejected"]


def test_a_referral_named_twice_by_one_kind_of_event_moves_once(uow, store):
    referral, _ = submit(uow)
    first, second = _closed(referral.referral_id, "completed"), _closed(referral.referral_id, "withdrawn")
    assert services.record_case_events(uow, [first, second], "x") == {referral.referral_id}
    assert [h["detail"] for h in store.history[referral.referral_id]] == [f"case {CASE_ID} closed (completed)"]
    assert sum(a["action"] == "referral.closed" for a in store.audits) == 1


MALFORMED = [
    ("eligibility_decided", {"referral_id": None}),
    ("eligibility_decided", {"case_id": ""}),
    ("eligibility_decided", {"decision": None}),
    ("eligibility_decided", {"decision": "maybe"}),
    ("eligibility_decided", {"decision": ["accepted"]}),
    ("eligibility_decided", {"reason": None}),
    ("eligibility_decided", {"reason": 42}),
    ("eligibility_decided", {"decided_at": None}),
    ("eligibility_decided", {"decided_at": "yesterday"}),
    ("case_closed", {"referral_id": 7}),
    ("case_closed", {"case_id": None}),
    ("case_closed", {"reason": None}),
    ("case_closed", {"reason": "bored"}),
    ("case_closed", {"after_rejection": None}),
    ("case_closed", {"after_rejection": "true"}),
    ("case_closed", {"after_rejection": 1}),
    ("case_closed", {"closed_at": 1767225600}),
]


@pytest.mark.parametrize("event_type, changes", MALFORMED)
def test_a_malformed_event_fails_its_batch_and_writes_nothing(uow, store, event_type, changes):
    referral, _ = submit(uow)
    make = _eligibility if event_type == "eligibility_decided" else _closed
    good = make(referral.referral_id)
    bad = make(referral.referral_id)
    bad.payload.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del bad.payload[key]                                  # None here means "left out"
    before = (copy.deepcopy(store.referrals), len(store.audits))

    with pytest.raises(ValueError):
        services.record_case_events(uow, [good, bad], "c")
    with pytest.raises(ValueError):
        services.record_case_events(uow, [bad], "c")
    assert (store.referrals, len(store.audits)) == before and not store.claimed
    assert services.record_case_events(uow, [good], "c") == {referral.referral_id}   # alone, it goes through


def test_an_event_type_the_referral_does_not_follow_is_refused(uow, store):
    referral, _ = submit(uow)
    event = new_event("cases", "case_reopened", "cumbria", {"referral_id": referral.referral_id, "case_id": CASE_ID})
    with pytest.raises(ValueError):
        services.record_case_events(uow, [event], "c")
    assert not store.claimed


@pytest.mark.parametrize("kind", list(EVENT_KINDS))
def test_an_event_for_an_unknown_referral_fails_its_batch(uow, store, kind):
    known, _ = submit(uow)
    good, bad = EVENT_KINDS[kind](known.referral_id), EVENT_KINDS[kind](str(uuid.uuid4()))
    with pytest.raises(LookupError, match="unknown referral"):
        services.record_case_events(uow, [good, bad], "c")
    assert store.referrals[known.referral_id].status == "received" and not store.claimed
    assert not [a for a in store.audits if a["principal"] == "system:cases"]
    assert services.record_case_events(uow, [good], "c") == {known.referral_id}
    with pytest.raises(LookupError):
        services.record_case_events(uow, [bad], "c")          # alone, it fails again: dead-lettered


# Order independence: the events of one case, as the cases service would publish them.
CASE_STORIES = {
    # (decision or None, closure as (reason, after_rejection) or None) -> status in the natural order
    (None, None): "case_opened",
    ("accepted", None): "accepted",
    ("rejected", None): "rejected",
    ("accepted", ("completed", False)): "closed",
    ("accepted", ("withdrawn", False)): "closed",
    ("rejected", ("unsuitable", True)): "rejected",
    ("rejected", ("declined", False)): "rejected",
    (None, ("unable_to_contact", False)): "closed",
    (None, ("terminated", True)): "rejected",
}
CONSUMERS = {"case_opened": "referrals.on_case_opened", "eligibility_decided": "referrals.on_eligibility_decided",
             "case_closed": "referrals.on_case_closed"}


def _story_events(referral_id, decision, closure):
    events = [_case_opened(referral_id, CASE_ID)]
    if decision:
        events.append(_eligibility(referral_id, decision, "a reason"))
    if closure:
        events.append(_closed(referral_id, closure[0], after_rejection=closure[1]))
    return events


def _deliver(uow, batches):
    for batch in batches:
        services.record_case_events(uow, batch, CONSUMERS[batch[0].type])


@given(story=st.sampled_from(sorted(CASE_STORIES, key=repr)), data=st.data())
@settings(max_examples=300, deadline=None)
def test_any_interleaving_ends_where_the_natural_order_does(story, data):
    decision, closure = story

    def fresh_referral():
        store = FakeStore()
        uows = FakeUnitsOfWork(lambda: FakeUnitOfWork(store), {"referrals": {"advance_status"}})
        referral, _ = submit(uows)
        return store, uows, referral.referral_id

    store, uows, rid = fresh_referral()
    events = _story_events(rid, decision, closure)
    _deliver(uows, [[e] for e in events])
    natural = store.referrals[rid].status
    assert natural == CASE_STORIES[story]

    store, uows, rid = fresh_referral()
    events = _story_events(rid, decision, closure)
    # Each event at least once (redelivery may repeat it), in any order; consecutive events of one
    # type may share a batch, as they would on their queue.
    deliveries = data.draw(st.lists(st.sampled_from(events), max_size=2 * len(events)), label="redeliveries")
    order = data.draw(st.permutations(events + deliveries), label="order")
    batches: list[list] = []
    for event in order:
        if batches and batches[-1][0].type == event.type and data.draw(st.booleans(), label="same batch"):
            batches[-1].append(event)
        else:
            batches.append([event])
    _deliver(uows, batches)

    assert store.referrals[rid].status == natural
    assert store.referrals[rid].case_id == CASE_ID
    # Each event moved the referral at most once, whatever was redelivered.
    assert len(store.history[rid]) <= len(events)
    assert len([a for a in store.audits if a["principal"] == "system:cases"]) == len(store.history[rid])


# -- agencies and keys --------------------------------------------------------------------------
ADMIN = staff("admin")


def test_admin_of_the_county_creates_an_agency(uow, store):
    created = services.create_agency(uow, ADMIN, "  Cumbria Constabulary ", "cumbria", "police")
    assert created["name"] == "Cumbria Constabulary" and created["county"] == "cumbria" and created["active"]
    assert store.agencies[created["agency_id"]]["kind"] == "police"
    assert store.audits[-1]["action"] == "agency.create"


@pytest.mark.parametrize("principal, error", [
    (staff("coordinator"), PermissionDenied),
    (staff("manager", "auditor"), PermissionDenied),
    (agency(), PermissionDenied),
    (staff("admin", counties=("lancashire",)), NotFound),
])
def test_creating_an_agency_needs_admin_of_that_county(uow, store, principal, error):
    with pytest.raises(error):
        services.create_agency(uow, principal, "Cumbria Constabulary", "cumbria", "police")
    assert not store.agencies


def test_agency_names_are_unique_per_county(uow, store):
    services.create_agency(uow, ADMIN, "Cumbria YOT", "cumbria", "youth_offending_team")
    with pytest.raises(Conflict):
        services.create_agency(uow, ADMIN, "Cumbria YOT", "cumbria", "youth_offending_team")
    lancs_admin = staff("admin", counties=("lancashire",))
    services.create_agency(uow, lancs_admin, "Cumbria YOT", "lancashire", "youth_offending_team")
    assert len(store.agencies) == 2


def test_create_agency_reports_every_bad_field(uow):
    with pytest.raises(ValidationFailed) as info:
        services.create_agency(uow, ADMIN, "x", "Not A County", "wizards")
    assert fields_of(info) == {"name", "county", "kind"}


def test_list_agencies_is_scoped_to_the_callers_counties(uow):
    services.create_agency(uow, ADMIN, "Cumbria Police", "cumbria", "police")
    services.create_agency(uow, staff("admin", counties=("lancashire",)), "Lancs Police", "lancashire", "police")
    assert [a["name"] for a in services.list_agencies(uow, staff("coordinator"))] == ["Cumbria Police"]
    assert services.list_agencies(uow, staff("coordinator"), "lancashire") == []
    with pytest.raises(PermissionDenied):
        services.list_agencies(uow, agency())


@pytest.fixture
def police(uow):
    return services.create_agency(uow, ADMIN, "Cumbria Police", "cumbria", "police")


def test_issued_key_authenticates_as_the_agency(uow, store, police):
    key_id, api_key = services.issue_agency_key(uow, ADMIN, police["agency_id"], "intake system")
    assert api_key.startswith(f"mend_{key_id}_")
    stored = store.keys[key_id]
    assert stored["agency_id"] == police["agency_id"] and stored["label"] == "intake system"
    assert split_api_key(api_key)[1] not in str(stored), "only a hash of the secret may be stored"
    assert store.audits[-1]["action"] == "api_key.issue"

    principal = services.authenticate_agency_key(uow, *split_api_key(api_key))
    assert principal.kind == "agency"
    assert principal.agency_id == principal.subject == police["agency_id"]
    assert principal.counties == frozenset({"cumbria"}) and principal.roles == frozenset({"partner"})
    assert principal.name == "Cumbria Police"


@pytest.mark.parametrize("principal, error", [
    (staff("coordinator"), PermissionDenied),
    (staff("admin", counties=("lancashire",)), NotFound),
    (agency(), NotFound),
])
def test_issuing_a_key_needs_admin_of_the_agencys_county(uow, store, police, principal, error):
    with pytest.raises(error):
        services.issue_agency_key(uow, principal, police["agency_id"])
    assert not store.keys


@pytest.mark.parametrize("agency_id", [str(uuid.uuid4()), "nope"])
def test_issuing_a_key_for_an_unknown_agency_is_not_found(uow, agency_id):
    with pytest.raises(NotFound):
        services.issue_agency_key(uow, ADMIN, agency_id)


def test_key_label_is_bounded(uow, police):
    with pytest.raises(ValidationFailed) as info:
        services.issue_agency_key(uow, ADMIN, police["agency_id"], "l" * 201)
    assert fields_of(info) == {"label"}


def test_a_revoked_key_stops_authenticating(uow, store, police):
    key_id, api_key = services.issue_agency_key(uow, ADMIN, police["agency_id"])
    assert services.revoke_agency_key(uow, ADMIN, key_id) is True
    assert store.audits[-1]["action"] == "api_key.revoke"
    with pytest.raises(Unauthenticated):
        services.authenticate_agency_key(uow, *split_api_key(api_key))
    assert services.revoke_agency_key(uow, ADMIN, key_id) is False       # already revoked


@pytest.mark.parametrize("principal, error", [
    (staff("coordinator"), PermissionDenied),
    (staff("admin", counties=("lancashire",)), NotFound),
    (agency(), NotFound),
])
def test_revoking_needs_admin_of_the_county(uow, store, police, principal, error):
    key_id, api_key = services.issue_agency_key(uow, ADMIN, police["agency_id"])
    with pytest.raises(error):
        services.revoke_agency_key(uow, principal, key_id)
    assert store.keys[key_id]["revoked_at"] is None
    services.authenticate_agency_key(uow, *split_api_key(api_key))


def test_revoking_an_unknown_key_is_not_found(uow):
    with pytest.raises(NotFound):
        services.revoke_agency_key(uow, ADMIN, "0123456789abcdef")


def test_wrong_secret_or_unknown_key_does_not_authenticate(uow, store, police):
    key_id, api_key = services.issue_agency_key(uow, ADMIN, police["agency_id"])
    _, secret = split_api_key(api_key)
    with pytest.raises(Unauthenticated):
        services.authenticate_agency_key(uow, key_id, secret + "x")
    with pytest.raises(Unauthenticated):
        services.authenticate_agency_key(uow, key_id, "")
    with pytest.raises(Unauthenticated):
        services.authenticate_agency_key(uow, "ffffffffffffffff", secret)


def test_a_deactivated_agencys_key_does_not_authenticate(uow, store, police):
    key_id, api_key = services.issue_agency_key(uow, ADMIN, police["agency_id"])
    store.agencies[police["agency_id"]]["active"] = False
    with pytest.raises(Unauthenticated):
        services.authenticate_agency_key(uow, *split_api_key(api_key))


def test_submit_as_an_authenticated_key_end_to_end(uow, store, police):
    """The principal authenticate_agency_key returns is the one submit_referral accepts."""
    _, api_key = services.issue_agency_key(uow, ADMIN, police["agency_id"])
    principal = services.authenticate_agency_key(uow, *split_api_key(api_key))
    referral, _ = services.submit_referral(uow, principal, "req-00000001", draft())
    assert referral.agency_id == police["agency_id"]
    assert services.get_referral(uow, principal, referral.referral_id).referral_id == referral.referral_id


@pytest.mark.parametrize("asked", ["\x00", "' OR 1=1 --", "\ud800", "x" * 500])
def test_a_refused_read_of_a_malformed_id_is_audited_escaped(uow, store, asked):
    with pytest.raises(NotFound):
        services.get_referral(uow, agency(), asked)
    recorded = store.audits[-1]["resource_id"]
    assert recorded == ascii(asked)[:64] and recorded.isascii() and "\x00" not in recorded
