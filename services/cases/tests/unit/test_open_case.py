"""Opening a case from referral_received, who may see it, and the cases service layer with an
in-memory unit of work: no broker, no database."""
from __future__ import annotations

import copy
import uuid
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mend_common.auth import Principal
from mend_common.envelope import new_event
from mend_common.errors import NotFound, PermissionDenied, ValidationFailed
from mend_common.testing.fakes import FakePlatformStore, FakePlatformUnitOfWork, FakeUnitsOfWork, json_paths, replace_at
from case_examples import AGENCY, OPENED, RECEIVED, open_from, referral
from mend_cases.domain.case import STAGES, Allocation, Case, InvalidReferral, open_case
from mend_cases.service_layer import services

PROPERTY = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def staff(*roles, counties=("cumbria",), subject="u1") -> Principal:
    return Principal(kind="staff", subject=subject, roles=frozenset(roles or ("coordinator",)),
                     counties=frozenset(counties))


PARTNER = Principal(kind="agency", subject=AGENCY, roles=frozenset({"partner"}), counties=frozenset({"cumbria"}),
                    agency_id=AGENCY)


# -- open_case --------------------------------------------------------------------------------
def test_a_case_opens_in_the_first_stage_from_the_referral():
    case = open_from(referral())
    uuid.UUID(case.case_id)
    assert case.referral_id == "r-1" and case.county == "cumbria" and case.referring_agency_id == AGENCY
    assert case.stage == "referral_received" == STAGES[0]
    assert case.initiated_by == "victim_led"
    assert (case.offence_type, case.offence_category, case.offence_date) == \
        ("burglary dwelling", "burglary", "2026-05-20")
    assert case.agency_reference == "CUM-0001"
    assert case.opened_at == OPENED
    assert [(h.stage, h.at, h.by) for h in case.history] == [("referral_received", OPENED, "system:referrals")]
    assert case.allocated_facilitators == []

    victim, responsible = case.participants
    assert victim.role == "victim" and victim.given_name == "Ann" and victim.family_name == "Smith"
    assert victim.age == 40 and victim.date_of_birth is None and not victim.is_youth
    assert victim.vulnerabilities == ["intimidated"] and victim.consent_to_contact is True
    assert victim.preferred_channel == "email" and victim.contact["email"] == "ann@example.org"
    assert responsible.preferred_channel == "" and responsible.consent_to_contact is False
    assert victim.participant_id != responsible.participant_id


def test_youth_is_computed_at_the_referral_date_from_date_of_birth():
    # Born 2008-06-02: 17 on the day before the 18th birthday, 18 on it.
    assert open_from(referral(), received_at=datetime(2026, 6, 1, 23, 59, tzinfo=timezone.utc)).participants[1].is_youth
    assert not open_from(referral(), received_at=datetime(2026, 6, 2, tzinfo=timezone.utc)).participants[1].is_youth


def test_youth_is_not_judged_by_when_the_case_opens():
    # The case opens long after the 18th birthday; what counts is the referral date.
    case = open_case(referral_id="r-1", county="cumbria", agency_id=AGENCY,
                     received_at=datetime(2026, 1, 1, tzinfo=timezone.utc), referral=referral(),
                     opened_at=datetime(2027, 1, 1, tzinfo=timezone.utc))
    assert case.participants[1].is_youth


@pytest.mark.parametrize("age, youth", [(17, True), (18, False), (1, True), (None, False)])
def test_youth_from_age_when_there_is_no_date_of_birth(age, youth):
    data = referral()
    data["participants"][0]["age"] = age
    assert open_from(data).participants[0].is_youth is youth


def test_date_of_birth_wins_over_age():
    data = referral()
    data["participants"][1]["age"] = 40          # contradicts the date of birth (17 on RECEIVED)
    assert open_from(data).participants[1].is_youth


def test_offence_flags_are_listed_in_canonical_order():
    data = referral()
    data["offence"].update(hate_crime=True, domestic_abuse=True)
    assert open_from(data).offence_flags == ["domestic_abuse", "hate_crime"]
    assert open_from(referral()).offence_flags == []
    # Whatever order the payload lists them in, and only the known flags.
    data["offence"] = {"serious_violence": True, "type": "assault", "category": "violence_against_the_person",
                       "date": "2026-05-20", "sexual_offence": False, "domestic_abuse": True, "weapon": True}
    assert open_from(data).offence_flags == ["domestic_abuse", "serious_violence"]


def test_minimal_participant_fields_default_sensibly():
    data = referral(participants=[{"role": "victim"}])
    [p] = open_from(data).participants
    assert (p.given_name, p.family_name, p.date_of_birth, p.age, p.is_youth) == ("", "", None, None, False)
    assert p.vulnerabilities == [] and p.contact == {} and p.preferred_channel == ""


def test_tuples_from_an_in_process_payload_are_accepted():
    data = referral()
    data["participants"] = tuple(data["participants"])
    data["participants"][0]["vulnerabilities"] = ("intimidated", "mental_health")
    case = open_from(data)
    assert case.participants[0].vulnerabilities == ["intimidated", "mental_health"]


def _without(data, *path):
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return data


@pytest.mark.parametrize("data", [
    None, [], "referral", 7,
    _without(referral(), "offence"),
    _without(referral(), "participants"),
    _without(referral(), "initiated_by"),
    _without(referral(), "agency_reference"),
    _without(referral(), "offence", "type"),
    _without(referral(), "offence", "category"),
    _without(referral(), "offence", "date"),
    _without(referral(), "participants", 0, "role"),
    referral(participants=[]),
    referral(participants=None),
    referral(participants=5),
    referral(participants=["victim"]),
    referral(participants="victim"),
    referral(offence="burglary"),
    referral(offence=None),
    referral(participants=[{"role": "victim", "date_of_birth": "2020-02-30"}]),
    referral(participants=[{"role": "victim", "date_of_birth": 20200101}]),
    referral(participants=[{"role": "victim", "age": "ten"}]),
    referral(participants=[{"role": "victim", "contact": "ann@example.org"}]),
    referral(participants=[{"role": "victim", "vulnerabilities": 3}]),
])
def test_malformed_referrals_raise_invalid_referral(data):
    with pytest.raises(InvalidReferral) as info:
        open_from(data)
    assert "r-1" in str(info.value)


# Arbitrary JSON, and a valid payload with one part replaced by arbitrary JSON.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from(["2008-06-02", "2026-02-30", "victim", "email"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


PAYLOAD_PATHS = [p for p in json_paths(referral()) if p]


def _open_or_invalid(data):
    try:
        case = open_from(data)
    except InvalidReferral:
        return None
    assert isinstance(case, Case) and case.participants
    return case


@PROPERTY
@given(json_values)
def test_junk_referrals_raise_only_invalid_referral(data):
    _open_or_invalid(data)


@PROPERTY
@given(st.sampled_from(PAYLOAD_PATHS), json_values)
def test_a_valid_referral_with_one_part_replaced_by_junk_raises_only_invalid_referral(path, junk):
    data = referral()
    replace_at(data, path, junk)
    _open_or_invalid(data)


# -- visibility ------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["coordinator", "manager", "auditor"])
def test_case_readers_of_the_county_see_the_case(role):
    case = open_from(referral())
    assert case.visible_to(staff(role))
    assert case.visible_to(staff(role, counties=("lancashire", "cumbria")))
    assert not case.visible_to(staff(role, counties=("lancashire",)))


def test_a_facilitator_sees_only_cases_allocated_to_them():
    case = open_from(referral())
    assert not case.visible_to(staff("facilitator", subject="f1"))
    case.facilitators.append(Allocation("f1", True, OPENED, "staff:c1"))
    assert case.visible_to(staff("facilitator", subject="f1"))
    assert not case.visible_to(staff("facilitator", subject="f2"))
    assert not case.visible_to(staff("facilitator", subject="f1", counties=("lancashire",)))


def test_partners_and_administrators_do_not_see_case_files():
    case = open_from(referral())
    assert not case.visible_to(PARTNER)
    assert not case.visible_to(staff("partner"))
    assert not case.visible_to(staff("admin"))   # IT runs the platform; it does not read case files


# -- service layer with a fake unit of work ---------------------------------------------------------
class FakeStore(FakePlatformStore):
    def __init__(self):
        super().__init__()
        self.cases: dict[str, Case] = {}


class FakeCaseRepository:
    def __init__(self, store: FakeStore):
        self.store = store

    def add(self, case: Case) -> bool:
        """Like the SQL insert ... ON CONFLICT (referral_id) DO NOTHING: False if the referral has a case."""
        if self.exists_for_referral(case.referral_id):
            return False
        assert case.case_id not in self.store.cases
        self.store.cases[case.case_id] = copy.deepcopy(case)
        return True

    def add_many(self, cases: list[Case]) -> set[str]:
        return {c.case_id for c in cases if self.add(c)}

    def exists_for_referral(self, referral_id: str) -> bool:
        return any(c.referral_id == referral_id for c in self.store.cases.values())

    def get(self, case_id: str) -> Case | None:
        found = self.store.cases.get(case_id)
        return copy.deepcopy(found) if found else None

    def search(self, *, counties, stage, facilitator_id, clock_due_by, breached_only, after, limit):
        rows = [c for c in self.store.cases.values()
                if c.county in counties and (not stage or c.stage == stage)
                and (not facilitator_id or facilitator_id in c.allocated_facilitators)
                and (not clock_due_by or any(k.met_at is None and k.due_on <= clock_due_by for k in c.clocks))
                and (after is None or (c.opened_at, c.case_id) < after)]
        rows.sort(key=lambda c: (c.opened_at, c.case_id), reverse=True)
        return [replace(copy.deepcopy(c), participants=[], history=[]) for c in rows[:limit]]


class FakeUnitOfWork(FakePlatformUnitOfWork):
    def __init__(self, store: FakeStore):
        super().__init__(store)
        self.cases = FakeCaseRepository(store)


@pytest.fixture
def store():
    return FakeStore()


@pytest.fixture
def uow(store):
    return FakeUnitsOfWork(lambda: FakeUnitOfWork(store))


CONSUMER = "cases.on_referral_received"


def referral_received(referral_id=None, county="cumbria", correlation_id="corr-123", **payload_changes):
    payload = {"referral_id": referral_id or str(uuid.uuid4()), "agency_id": AGENCY,
               "received_at": RECEIVED.isoformat(), "referral": referral()}
    payload.update(payload_changes)
    return new_event("referrals", "referral_received", county, payload, correlation_id=correlation_id)


def test_open_case_for_referral_stores_publishes_and_audits(uow, store):
    event = referral_received()
    case = services.open_case_for_referral(uow, event, CONSUMER)

    assert case is not None
    assert set(store.cases) == {case.case_id}
    stored = store.cases[case.case_id]
    assert stored.referral_id == event.payload["referral_id"] and stored.county == "cumbria"
    assert stored.referring_agency_id == AGENCY
    assert stored.participants[1].is_youth                      # computed at received_at, not today

    [published] = store.events
    assert published.type == "case_opened" and published.source == "cases" and published.county == "cumbria"
    assert published.correlation_id == "corr-123"               # the incoming event's, carried on
    assert published.event_id != event.event_id
    assert published.payload == {"case_id": case.case_id, "referral_id": event.payload["referral_id"],
                                 "stage": "referral_received", "opened_at": case.opened_at.isoformat(),
                                 # who referred it, so the referrer is told without another lookup
                                 "agency_id": event.payload["agency_id"],
                                 "agency_reference": event.payload["referral"]["agency_reference"]}
    assert store.audits == [{"principal": "system:referrals", "action": "case.open", "resource_type": "case",
                             "resource_id": case.case_id, "county": "cumbria",
                             "reason": f"referral {event.payload['referral_id']} received",
                             "correlation_id": "corr-123"}]


def test_a_redelivered_event_opens_nothing(uow, store):
    event = referral_received()
    assert services.open_case_for_referral(uow, event, CONSUMER) is not None
    assert services.open_case_for_referral(uow, event, CONSUMER) is None
    assert len(store.cases) == 1 and len(store.events) == 1 and len(store.audits) == 1


def test_two_event_ids_for_one_referral_open_one_case(uow, store):
    first = referral_received()
    second = referral_received(referral_id=first.payload["referral_id"])
    assert first.event_id != second.event_id
    assert services.open_case_for_referral(uow, first, CONSUMER) is not None
    assert services.open_case_for_referral(uow, second, CONSUMER) is None
    assert len(store.cases) == 1 and len(store.events) == 1


def test_each_referral_gets_its_own_case(uow, store):
    a = services.open_case_for_referral(uow, referral_received(), CONSUMER)
    b = services.open_case_for_referral(uow, referral_received(), CONSUMER)
    assert a.case_id != b.case_id and len(store.cases) == 2 and len(store.events) == 2


def test_another_consumer_claims_the_same_event_separately(uow, store):
    event = referral_received()
    services.open_case_for_referral(uow, event, CONSUMER)
    assert (CONSUMER, event.event_id) in store.claimed
    # A different consumer name has its own claim, and still finds the referral's case.
    assert services.open_case_for_referral(uow, event, "other.consumer") is None
    assert (("other.consumer", event.event_id)) in store.claimed


def test_without_received_at_youth_is_judged_at_the_event_time(uow, store):
    event = referral_received(received_at=None)
    event = replace(event, occurred_at=datetime(2026, 6, 2, tzinfo=timezone.utc).isoformat())   # 18th birthday
    case = services.open_case_for_referral(uow, event, CONSUMER)
    assert not case.participants[1].is_youth


@pytest.mark.parametrize("bad", [None, {}, {"participants": []}, "referral"])
def test_a_malformed_referral_is_a_poison_message_and_changes_nothing(uow, store, bad):
    event = referral_received(referral=bad)
    with pytest.raises(InvalidReferral):
        services.open_case_for_referral(uow, event, CONSUMER)
    assert not store.cases and not store.events and not store.claimed and not store.audits


@pytest.mark.parametrize("received_at", ["yesterday", 20260601])
def test_a_malformed_received_at_is_a_poison_message(uow, received_at):
    with pytest.raises(InvalidReferral):
        services.open_case_for_referral(uow, referral_received(received_at=received_at), CONSUMER)


@pytest.mark.parametrize("referral_id", ["", None])
def test_a_referral_received_without_a_referral_id_is_a_poison_message(uow, store, referral_id):
    event = referral_received()
    event.payload["referral_id"] = referral_id
    with pytest.raises(InvalidReferral):
        services.open_case_for_referral(uow, event, CONSUMER)


# -- batches of events ---------------------------------------------------------------------------
def test_a_batch_opens_a_case_per_referral_each_with_its_own_correlation_id(uow, store):
    events = [referral_received(correlation_id=f"corr-{i}") for i in range(3)]
    cases = services.open_cases_for_referrals(uow, events, CONSUMER)
    assert sorted(c.referral_id for c in cases) == sorted(e.payload["referral_id"] for e in events)
    assert len(store.cases) == 3 and store.commits == 1                  # one transaction for the batch
    by_referral = {e.payload["referral_id"]: e.correlation_id for e in events}
    for published in store.events:
        assert published.correlation_id == by_referral[published.payload["referral_id"]]
    assert sorted(a["correlation_id"] for a in store.audits) == ["corr-0", "corr-1", "corr-2"]


def test_a_batch_with_a_redelivery_and_a_second_event_for_one_referral_opens_one_case_each(uow, store):
    first = referral_received()
    again = referral_received(referral_id=first.payload["referral_id"])
    other = referral_received()
    services.open_case_for_referral(uow, first, CONSUMER)
    opened = services.open_cases_for_referrals(uow, [first, again, other, other], CONSUMER)
    assert [c.referral_id for c in opened] == [other.payload["referral_id"]]
    assert len(store.cases) == 2 and len(store.events) == 2 and len(store.audits) == 2


def test_one_malformed_event_fails_its_whole_batch_and_writes_nothing(uow, store):
    good, bad = referral_received(), referral_received(referral=None)
    with pytest.raises(InvalidReferral):
        services.open_cases_for_referrals(uow, [good, bad], CONSUMER)
    assert not store.cases and not store.events and not store.claimed and not store.audits
    # Handled one by one afterwards (as the worker does), the good one opens its case.
    assert services.open_case_for_referral(uow, good, CONSUMER) is not None


@PROPERTY
@given(picks=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=25),
       cuts=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=25))
def test_however_deliveries_are_batched_each_referral_gets_exactly_one_case(picks, cuts):
    """Events are drawn with repeats (redeliveries, and a second event for a referral) and cut
    into batches of any sizes: the outcome is always one case and one case_opened per referral."""
    store = FakeStore()
    uows = FakeUnitsOfWork(lambda: FakeUnitOfWork(store))
    referral_ids = [str(uuid.uuid4()) for _ in range(3)]
    pool = [referral_received(referral_id=referral_ids[i % 3]) for i in range(6)]
    deliveries = [pool[i] for i in picks]
    start, cut = 0, 0
    while start < len(deliveries):
        size = cuts[cut % len(cuts)]
        services.open_cases_for_referrals(uows, deliveries[start:start + size], CONSUMER)
        start, cut = start + size, cut + 1
    wanted = {e.payload["referral_id"] for e in deliveries}
    assert sorted(c.referral_id for c in store.cases.values()) == sorted(wanted)
    assert sorted(e.payload["referral_id"] for e in store.events) == sorted(wanted)


# -- reading cases ---------------------------------------------------------------------------
@pytest.fixture
def opened(uow):
    return services.open_case_for_referral(uow, referral_received(), CONSUMER)


@pytest.mark.parametrize("role", ["coordinator", "manager", "auditor"])
def test_case_readers_of_the_county_get_the_full_case(uow, store, opened, role):
    case = services.get_case(uow, staff(role), opened.case_id)
    assert case.case_id == opened.case_id
    assert len(case.participants) == 2 and [h.stage for h in case.history] == ["referral_received"]
    assert store.audits[-1] == {"principal": "staff:u1", "action": "case.read", "resource_type": "case",
                                "resource_id": opened.case_id, "county": "cumbria", "reason": None}


@pytest.mark.parametrize("principal", [
    staff("coordinator", counties=("lancashire",)),
    staff("manager", counties=("lancashire", "merseyside")),
    staff("facilitator"),                                       # not allocated
    staff("facilitator", "auditor", counties=("lancashire",)),
])
def test_get_case_looks_missing_to_those_who_may_not_see_it(uow, store, opened, principal):
    audits = len(store.audits)
    with pytest.raises(NotFound):
        services.get_case(uow, principal, opened.case_id)
    # The refusal is audited, and the record does not reveal the case's county.
    assert [(a["action"], a["resource_id"], a["county"]) for a in store.audits[audits:]] == [
        ("case.read_refused", opened.case_id, None)]


def test_an_allocated_facilitator_gets_the_case(uow, store, opened):
    store.cases[opened.case_id].facilitators.append(Allocation("f1", True, OPENED, "staff:c1"))
    assert services.get_case(uow, staff("facilitator", subject="f1"), opened.case_id).case_id == opened.case_id
    with pytest.raises(NotFound):
        services.get_case(uow, staff("facilitator", subject="f2"), opened.case_id)


@pytest.mark.parametrize("principal", [PARTNER, staff("partner"), staff("admin"),
                                       Principal(kind="agency", subject="x", roles=frozenset({"coordinator"}),
                                                 counties=frozenset({"cumbria"}))])
def test_partners_may_not_read_cases(uow, opened, principal):
    with pytest.raises(PermissionDenied):
        services.get_case(uow, principal, opened.case_id)
    with pytest.raises(PermissionDenied):
        services.list_cases(uow, principal, county="", stage=None, page_size=10, page_token="")


@pytest.mark.parametrize("case_id", ["", "not-a-uuid", str(uuid.uuid4())])
def test_unknown_or_malformed_case_id_is_not_found(uow, case_id):
    with pytest.raises(NotFound):
        services.get_case(uow, staff("coordinator"), case_id)


def _open_many(uow, n, county="cumbria"):
    return [services.open_case_for_referral(uow, referral_received(county=county), CONSUMER) for _ in range(n)]


def test_list_cases_is_scoped_to_the_callers_counties(uow, store):
    cumbria = _open_many(uow, 3)
    lancs = _open_many(uow, 2, county="lancashire")
    items, token = services.list_cases(uow, staff("coordinator"), county="", stage=None, page_size=0, page_token="")
    assert {c.case_id for c in items} == {c.case_id for c in cumbria} and token == ""
    both = staff("manager", counties=("cumbria", "lancashire"))
    items, _ = services.list_cases(uow, both, county="lancashire", stage=None, page_size=0, page_token="")
    assert {c.case_id for c in items} == {c.case_id for c in lancs}
    assert store.audits[-1]["action"] == "case.list"


def test_listing_another_countys_cases_is_not_found(uow):
    _open_many(uow, 1, county="lancashire")
    with pytest.raises(NotFound):
        services.list_cases(uow, staff("coordinator"), county="lancashire", stage=None, page_size=10, page_token="")


def test_facilitators_list_only_their_allocated_cases(uow, store):
    first, second = _open_many(uow, 2)
    store.cases[second.case_id].facilitators.append(Allocation("f1", True, OPENED, "staff:c1"))
    mine, _ = services.list_cases(uow, staff("facilitator", subject="f1"), county="", stage=None, page_size=10,
                                  page_token="")
    assert [c.case_id for c in mine] == [second.case_id]
    # Asking for someone else's allocation shows nothing, not their cases.
    assert services.list_cases(uow, staff("facilitator", subject="f1"), county="", stage=None, page_size=10,
                               page_token="", facilitator_id="f2") == ([], "")
    assert services.list_cases(uow, staff("facilitator", subject="f3"), county="", stage=None, page_size=10,
                               page_token="") == ([], "")


def test_list_cases_filters_by_stage(uow):
    _open_many(uow, 2)
    items, _ = services.list_cases(uow, staff(), county="", stage="referral_received", page_size=10, page_token="")
    assert len(items) == 2
    items, _ = services.list_cases(uow, staff(), county="", stage="consent", page_size=10, page_token="")
    assert items == []


def test_list_cases_pages_through_everything_once(uow):
    opened = _open_many(uow, 5)
    seen, token = [], ""
    for _ in range(10):
        items, token = services.list_cases(uow, staff(), county="", stage=None, page_size=2, page_token=token)
        seen += items
        if not token:
            break
    assert sorted(c.case_id for c in seen) == sorted(c.case_id for c in opened)
    assert len(seen) == 5
    assert [c.opened_at for c in seen] == sorted((c.opened_at for c in seen), reverse=True)


@pytest.mark.parametrize("kwargs, fields", [
    ({"stage": "triage"}, {"stage"}),
    ({"page_size": 201}, {"page_size"}),
    ({"page_size": -5}, {"page_size"}),
    ({"page_token": "garbage"}, {"page_token"}),
    ({"stage": "nope", "page_size": 500, "page_token": "x"}, {"stage", "page_size", "page_token"}),
])
def test_bad_list_arguments_are_validation_errors(uow, kwargs, fields):
    args = {"county": "", "stage": None, "page_size": 10, "page_token": ""}
    args.update(kwargs)
    with pytest.raises(ValidationFailed) as info:
        services.list_cases(uow, staff(), **args)
    assert {v.field for v in info.value.violations} == fields


@pytest.mark.parametrize("page_size", [1, 200])
def test_page_size_bounds_are_inclusive(uow, page_size):
    services.list_cases(uow, staff(), county="", stage=None, page_size=page_size, page_token="")
