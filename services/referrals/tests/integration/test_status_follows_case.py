"""A referral's status follows its case through the real repository and unit of work, on SQLite
and on PostgreSQL: the guarded multi-status UPDATE, history, claims and audit records."""
from __future__ import annotations

import random
import uuid

import pytest
from sqlalchemy import select, text, update

from mend_common.auth import Principal
from mend_common.db import Database
from mend_common.envelope import new_event
from mend_common.outbox import PlatformStore
from mend_common.uow import UnitsOfWork
from mend_referrals.adapters.tables import metadata, platform, referral_status_history, referrals
from mend_referrals.service_layer import services
from mend_referrals.service_layer.unit_of_work import ReferralsChainedUnitOfWork, ReferralsUnitOfWork

AGENCY = str(uuid.uuid4())
STATUSES = ("received", "case_opened", "accepted", "closed", "rejected")


@pytest.fixture
def db(database_url):
    schema = f"referrals_{uuid.uuid4().hex[:8]}"
    database = Database(database_url, schema, pool_size=2)
    with database.engine.begin() as conn:
        if database.is_postgres:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            conn.execute(text(f'SET search_path TO "{schema}"'))
        metadata.create_all(conn)
    yield database
    if database.is_postgres:
        with database.engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    database.dispose()


@pytest.fixture
def uows(db):
    store = PlatformStore(db, platform, "referrals")
    return UnitsOfWork(lambda: ReferralsUnitOfWork(db, store), lambda: ReferralsChainedUnitOfWork(db, store))


def submit(uows, n: int) -> str:
    principal = Principal(kind="agency", subject=AGENCY, roles=frozenset({"partner"}), counties=frozenset({"cumbria"}),
                          agency_id=AGENCY)
    data = {"agency_reference": f"CUM-{n:04d}", "county": "cumbria",
            "offence": {"type": "burglary dwelling", "category": "burglary", "date": "2025-01-10"},
            "initiated_by": "victim_led", "participants": [{"role": "victim", "given_name": "Ann", "age": 40}]}
    referral, _ = services.submit_referral(uows, principal, f"req-{uuid.uuid4().hex}", data)
    return referral.referral_id


def put_at(db, referral_id: str, status: str) -> None:
    with db.transaction() as conn:
        conn.execute(update(referrals).where(referrals.c.referral_id == referral_id).values(status=status))


def stored(db, referral_id: str):
    with db.engine.connect() as conn:
        row = conn.execute(select(referrals.c.status, referrals.c.case_id)
                           .where(referrals.c.referral_id == referral_id)).one()
        history = conn.execute(select(referral_status_history.c.status, referral_status_history.c.detail)
                               .where(referral_status_history.c.referral_id == referral_id)
                               .order_by(referral_status_history.c.id)).all()
    return row.status, row.case_id, [tuple(h) for h in history]


def audits(db) -> list:
    with db.engine.connect() as conn:
        return conn.execute(select(platform.audit_log).where(platform.audit_log.c.principal == "system:cases")
                            .order_by(platform.audit_log.c.id)).all()


def eligibility(referral_id, decision, case_id, reason=""):
    return new_event("cases", "eligibility_decided", "cumbria", {
        "case_id": case_id, "referral_id": referral_id, "decision": decision, "reason": reason,
        "decided_at": "2026-05-01T09:30:00+00:00"})


def closed(referral_id, case_id, reason="completed", after_rejection=False):
    return new_event("cases", "case_closed", "cumbria", {
        "case_id": case_id, "referral_id": referral_id, "reason": reason, "after_rejection": after_rejection,
        "closed_at": "2026-06-01T16:00:00+00:00"})


@pytest.mark.parametrize("after_rejection, expected", [
    (False, {"received": "closed", "case_opened": "closed", "accepted": "closed", "closed": "closed",
             "rejected": "rejected"}),
    (True, {s: "rejected" for s in STATUSES}),
])
def test_one_batch_moves_each_referral_from_any_of_the_rules_statuses(db, uows, after_rejection, expected):
    ids = {status: submit(uows, i) for i, status in enumerate(STATUSES)}
    for status, rid in ids.items():
        put_at(db, rid, status)
    case_ids = {rid: str(uuid.uuid4()) for rid in ids.values()}
    events = [closed(rid, case_ids[rid], "withdrawn", after_rejection) for rid in ids.values()]

    moved = services.record_case_events(uows, events, "referrals.on_case_closed")

    assert moved == {rid for status, rid in ids.items() if expected[status] != status}
    for status, rid in ids.items():
        now, case_id, history = stored(db, rid)
        assert now == expected[status]
        if rid in moved:
            assert case_id == case_ids[rid] and [h[0] for h in history] == [now]
        else:
            assert case_id is None and history == []
    assert {(a.resource_id, a.action) for a in audits(db)} == {(rid, f"referral.{expected[s]}")
                                                                for s, rid in ids.items() if rid in moved}
    by_referral = {e.payload["referral_id"]: e.correlation_id for e in events}
    assert all(a.correlation_id == by_referral[a.resource_id] for a in audits(db))
    assert services.record_case_events(uows, events, "referrals.on_case_closed") == set()   # redelivered


@pytest.mark.parametrize("seed", range(4))
def test_a_rejected_case_ends_rejected_in_any_order(db, uows, seed):
    rid, case_id = submit(uows, 1), str(uuid.uuid4())
    events = [new_event("cases", "case_opened", "cumbria", {"referral_id": rid, "case_id": case_id}),
              eligibility(rid, "rejected", case_id, "outside the scheme"),
              closed(rid, case_id, "unsuitable", after_rejection=True)]
    random.Random(seed).shuffle(events)
    for event in events + events:                                # every one redelivered too
        services.record_case_events(uows, [event], f"referrals.on_{event.type}")

    status, stored_case_id, history = stored(db, rid)
    assert status == "rejected" and stored_case_id == case_id
    assert history[-1][0] == "rejected" and len(history) == len(audits(db)) <= 3
    got = services.get_referral(uows, Principal(kind="agency", subject=AGENCY, roles=frozenset({"partner"}),
                                                counties=frozenset({"cumbria"}), agency_id=AGENCY), rid)
    assert got.status == "rejected"


def test_the_referrer_reads_the_rejection_reason(db, uows):
    rid, case_id = submit(uows, 1), str(uuid.uuid4())
    services.record_case_events(uows, [eligibility(rid, "accepted", case_id)], "referrals.on_eligibility_decided")
    services.record_case_events(uows, [eligibility(rid, "rejected", case_id, "the responsible person denies it")],
                                "referrals.on_eligibility_decided")
    assert stored(db, rid) == ("rejected", case_id, [
        ("accepted", "accepted for restorative justice"),
        ("rejected", "not accepted for restorative justice: the responsible person denies it")])


def test_an_unknown_referral_fails_the_batch_and_writes_nothing(db, uows):
    rid, case_id = submit(uows, 1), str(uuid.uuid4())
    good, bad = eligibility(rid, "accepted", case_id), eligibility(str(uuid.uuid4()), "accepted", case_id)
    with pytest.raises(LookupError):
        services.record_case_events(uows, [good, bad], "referrals.on_eligibility_decided")
    assert stored(db, rid) == ("received", None, []) and audits(db) == []
    with db.engine.connect() as conn:
        assert conn.execute(select(platform.processed_events)).all() == []
    assert services.record_case_events(uows, [good], "referrals.on_eligibility_decided") == {rid}
