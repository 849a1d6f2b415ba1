"""parse_draft: every rule a referral must meet, reported as field path + rule, all at once.

Plain Python only: no broker, no database.
"""
from __future__ import annotations

import copy
import json
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mend.referrals.v1 import referrals_pb2 as pb
from mend_common.errors import FieldViolation, ValidationFailed
from mend_common.testing.fakes import json_paths, replace_at
from mend_common.proto_convert import enum_to_plain, message_to_plain
from mend_referrals.domain.referral import MAX_PARTICIPANTS, ReferralDraft, parse_draft
from mend_referrals.domain.vocabulary import (AGENCY_KINDS, CONTACT_CHANNELS, INITIATORS, OFFENCE_CATEGORIES,
                                              OFFENCE_FLAGS, PARTICIPANT_ROLES, VULNERABILITIES, ReferralStatus)

TODAY = date(2025, 6, 1)
PROPERTY = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def valid_data() -> dict:
    return {
        "agency_reference": "CUM/2025/0042",
        "county": "cumbria",
        "offence": {"type": "burglary dwelling", "category": "burglary", "date": "2025-01-10",
                    "reported_date": "2025-01-11", "domestic_abuse": False, "hate_crime": True},
        "initiated_by": "victim_led",
        "participants": [
            {"role": "victim", "given_name": "Ann", "family_name": "Smith", "date_of_birth": "1980-03-04",
             "contact": {"email": "ann@example.org", "phone": "+44 1228 123456", "address": "1 High St, Carlisle",
                         "postcode": "ca1 1aa", "preferred_channel": "email"},
             "vulnerabilities": ["intimidated", "language_needs"], "consent_to_contact": True,
             "notes": "prefers morning calls\nno visits at home"},
            {"role": "responsible_person", "given_name": "Bob", "age": 19},
        ],
        "reason": "victim asked the police about RJ",
    }


def violations(data, today: date = TODAY) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as info:
        parse_draft(data, today=today)
    assert info.value.violations, "ValidationFailed must carry at least one violation"
    return [(v.field, v.rule) for v in info.value.violations]


def assert_violation(data, field: str, rule_fragment: str, today: date = TODAY) -> list[tuple[str, str]]:
    found = violations(data, today)
    assert any(f == field and rule_fragment in r for f, r in found), \
        f"expected {field!r} ~ {rule_fragment!r}, got {found}"
    return found


def mutated(**changes):
    """valid_data() with dotted paths set (or deleted with ...)."""
    data = valid_data()
    for path, value in changes.items():
        target = data
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last = int(keys[-1]) if isinstance(target, list) else keys[-1]
        if value is ...:
            del target[last]
        else:
            target[last] = value
    return data


# -- a valid draft -------------------------------------------------------------------------
def test_valid_draft_parses_into_typed_values():
    draft = parse_draft(valid_data(), today=TODAY)

    assert isinstance(draft, ReferralDraft)
    assert draft.agency_reference == "CUM/2025/0042"
    assert draft.county == "cumbria"
    assert draft.initiated_by == "victim_led"
    assert draft.offence.category == "burglary"
    assert draft.offence.date == "2025-01-10"
    assert draft.offence.reported_date == "2025-01-11"
    assert draft.offence.flags == ["hate_crime"]
    victim, responsible = draft.participants
    assert victim.role == "victim" and responsible.role == "responsible_person"
    assert victim.date_of_birth == "1980-03-04" and victim.age is None
    assert victim.age_on(TODAY) == 45
    assert victim.contact.postcode == "CA1 1AA"         # normalised to upper case
    assert victim.contact.preferred_channel == "email"
    assert victim.vulnerabilities == ("intimidated", "language_needs")
    assert victim.has_enhanced_rights
    assert victim.consent_to_contact is True
    assert victim.notes.startswith("prefers morning calls\n")  # newlines are not control characters here
    assert responsible.age == 19 and responsible.date_of_birth is None
    assert not responsible.is_youth_on(TODAY)
    assert responsible.consent_to_contact is False
    assert not responsible.has_enhanced_rights
    assert draft.reason == "victim asked the police about RJ"


def test_minimal_draft_parses():
    data = {"agency_reference": "R1", "county": "cumbria",
            "offence": {"type": "theft", "category": "theft", "date": "2025-05-31"},
            "initiated_by": "offender_led", "participants": [{"role": "responsible_person", "family_name": "Jones"}]}
    draft = parse_draft(data, today=TODAY)
    assert draft.offence.reported_date is None
    assert draft.offence.flags == []
    assert draft.participants[0].given_name == "" and draft.participants[0].family_name == "Jones"
    assert draft.participants[0].age_on(TODAY) is None
    assert draft.reason == ""


def test_text_is_trimmed():
    data = mutated(agency_reference="  R-7  ", participants__0__given_name="  Ann ", reason="  why  ")
    draft = parse_draft(data, today=TODAY)
    assert draft.agency_reference == "R-7"
    assert draft.participants[0].given_name == "Ann"
    assert draft.reason == "why"


def test_whitespace_only_optional_fields_count_as_not_given():
    data = mutated(reason="   ", participants__0__notes=" \t ", participants__0__given_name="  ",
                   participants__0__contact={"address": "   "})
    draft = parse_draft(data, today=TODAY)
    assert draft.reason == ""
    assert draft.participants[0].notes == ""
    assert draft.participants[0].given_name == "" and draft.participants[0].family_name == "Smith"
    assert draft.participants[0].contact.address == ""


def test_whitespace_only_required_field_is_required():
    assert violations(mutated(agency_reference="   ")) == [("agency_reference", "is required")]


def test_whitespace_only_names_on_both_sides_need_a_name():
    assert_violation(mutated(participants__0__given_name=" ", participants__0__family_name=" "),
                     "participants[0].given_name", "needs a given name or a family name")


def test_age_zero_means_not_given():
    draft = parse_draft(mutated(participants__1__age=0), today=TODAY)
    assert draft.participants[1].age is None


@pytest.mark.parametrize("age", [1, 120])
def test_age_bounds_are_inclusive(age):
    assert parse_draft(mutated(participants__1__age=age), today=TODAY).participants[1].age == age


def test_exactly_max_participants_is_allowed():
    data = valid_data()
    data["participants"] += [{"role": "supporter", "given_name": f"S{i}"} for i in range(MAX_PARTICIPANTS - 2)]
    assert len(parse_draft(data, today=TODAY).participants) == MAX_PARTICIPANTS


def test_offence_on_the_day_and_reported_same_day_is_allowed():
    draft = parse_draft(mutated(offence__date=TODAY.isoformat(), offence__reported_date=TODAY.isoformat()),
                        today=TODAY)
    assert draft.offence.date == draft.offence.reported_date == TODAY.isoformat()


def test_leap_day_is_a_real_date():
    assert parse_draft(mutated(offence__date="2024-02-29"), today=TODAY).offence.date == "2024-02-29"


def test_via_referrer_needs_no_contact_detail():
    draft = parse_draft(mutated(participants__0__contact={"preferred_channel": "via_referrer"}), today=TODAY)
    assert draft.participants[0].contact.preferred_channel == "via_referrer"


def test_parent_or_guardian_allowed_with_a_youth_by_age_or_date_of_birth():
    by_age = mutated(participants__1__age=15)
    by_age["participants"].append({"role": "parent_or_guardian", "given_name": "Pat"})
    assert parse_draft(by_age, today=TODAY).participants[1].is_youth_on(TODAY)

    by_dob = mutated(participants__1__age=..., participants__1__date_of_birth="2008-06-02")   # 16 on TODAY
    by_dob["participants"].append({"role": "parent_or_guardian", "given_name": "Pat"})
    draft = parse_draft(by_dob, today=TODAY)
    assert draft.participants[1].age_on(TODAY) == 16


# -- each rule, named by field and rule ------------------------------------------------------
@pytest.mark.parametrize("data, field, rule", [
    # missing
    (mutated(agency_reference=...), "agency_reference", "is required"),
    (mutated(county=...), "county", "is required"),
    (mutated(offence=...), "offence", "is required"),
    (mutated(offence__type=...), "offence.type", "is required"),
    (mutated(offence__category=...), "offence.category", "is required"),
    (mutated(offence__date=...), "offence.date", "is required"),
    (mutated(initiated_by=...), "initiated_by", "is required"),
    (mutated(participants=...), "participants", "must list at least one participant"),
    (mutated(participants__1__role=...), "participants[1].role", "is required"),
    (mutated(participants__1__given_name=...), "participants[1].given_name", "needs a given name or a family name"),
    (mutated(agency_reference=""), "agency_reference", "is required"),
    (mutated(agency_reference=None), "agency_reference", "is required"),
    # unknown fields
    (mutated(colour="blue"), "colour", "is not a recognised field"),
    (mutated(offence__weapon="knife"), "offence.weapon", "is not a recognised field"),
    (mutated(participants__0__nickname="Annie"), "participants[0].nickname", "is not a recognised field"),
    (mutated(participants__0__contact__fax="0123"), "participants[0].contact.fax", "is not a recognised field"),
    # bad enum values
    (mutated(offence__category="arson"), "offence.category", "must be one of: violence_against_the_person"),
    (mutated(offence__category=5), "offence.category", "must be one of"),
    (mutated(offence__category="BURGLARY"), "offence.category", "must be one of"),
    (mutated(initiated_by="court_led"), "initiated_by", "must be one of: victim_led, offender_led"),
    (mutated(participants__1__role="witness"), "participants[1].role", "must be one of"),
    (mutated(participants__0__contact__preferred_channel="pigeon"), "participants[0].contact.preferred_channel",
     "must be one of"),
    (mutated(participants__0__vulnerabilities=["intimidated", "psychic"]), "participants[0].vulnerabilities[1]",
     "must be one of"),
    (mutated(participants__0__vulnerabilities=[None]), "participants[0].vulnerabilities[0]", "must be one of"),
    (mutated(participants__0__vulnerabilities="intimidated"), "participants[0].vulnerabilities", "must be a list"),
    (mutated(participants__0__vulnerabilities=["intimidated", "language_needs", "intimidated"]),
     "participants[0].vulnerabilities[2]", "is listed twice"),
    # dates
    (mutated(offence__date=(TODAY + timedelta(days=1)).isoformat()), "offence.date", "must not be in the future"),
    (mutated(offence__reported_date=(TODAY + timedelta(days=1)).isoformat()), "offence.reported_date",
     "must not be in the future"),
    (mutated(participants__0__date_of_birth="2025-06-02"), "participants[0].date_of_birth",
     "must not be in the future"),
    (mutated(offence__date="10/01/2025"), "offence.date", "must be a date written YYYY-MM-DD"),
    (mutated(offence__date="2025-1-10"), "offence.date", "must be a date written YYYY-MM-DD"),
    (mutated(offence__date="2025-01-10T10:00:00"), "offence.date", "must be a date written YYYY-MM-DD"),
    (mutated(offence__date=20250110), "offence.date", "must be a date written YYYY-MM-DD"),
    (mutated(offence__date="2026-02-30"), "offence.date", "must be a real calendar date"),
    (mutated(offence__date="2025-02-29"), "offence.date", "must be a real calendar date"),
    (mutated(offence__date="2025-13-01"), "offence.date", "must be a real calendar date"),
    (mutated(offence__date="0000-01-01"), "offence.date", "must be a real calendar date"),
    (mutated(participants__0__date_of_birth="1899-12-31"), "participants[0].date_of_birth", "must be after 1900"),
    (mutated(offence__date="2025-01-12", offence__reported_date="2025-01-11"), "offence.reported_date",
     "must not be before offence.date"),
    # participants
    (mutated(participants=[]), "participants", "must list at least one participant"),
    (mutated(participants={"role": "victim"}), "participants", "must be a list"),
    (mutated(participants="Ann"), "participants", "must be a list"),
    (mutated(participants=[{"role": "victim", "given_name": "A"}] * (MAX_PARTICIPANTS + 1)), "participants",
     f"must list at most {MAX_PARTICIPANTS} participants"),
    (mutated(participants__1="Bob"), "participants[1]", "must be an object"),
    (mutated(participants__0__role="supporter"), "participants", "a victim-led referral must include the victim"),
    (mutated(initiated_by="offender_led", participants__1__role="supporter"), "participants",
     "an offender-led referral must include the responsible person"),
    # contact details
    (mutated(participants__0__contact__email="ann.example.org"), "participants[0].contact.email",
     "must be an email address"),
    (mutated(participants__0__contact__email="ann@"), "participants[0].contact.email", "must be an email address"),
    (mutated(participants__0__contact__email="a nn@example.org"), "participants[0].contact.email",
     "must be an email address"),
    (mutated(participants__0__contact__phone="call me"), "participants[0].contact.phone", "must be a phone number"),
    (mutated(participants__0__contact__phone="12345"), "participants[0].contact.phone", "must be a phone number"),
    (mutated(participants__0__contact__postcode="XYZ"), "participants[0].contact.postcode", "must be a UK postcode"),
    (mutated(participants__0__contact__postcode="CA11 1AAA"), "participants[0].contact.postcode",
     "must be at most 8 characters"),
    (mutated(participants__0__contact={"preferred_channel": "email"}), "participants[0].contact.email",
     "is required when preferred_channel is email"),
    (mutated(participants__0__contact={"preferred_channel": "sms", "email": "a@b.org"}),
     "participants[0].contact.phone", "is required when preferred_channel is sms"),
    (mutated(participants__0__contact={"preferred_channel": "phone"}), "participants[0].contact.phone",
     "is required when preferred_channel is phone"),
    (mutated(participants__0__contact={"preferred_channel": "letter", "postcode": "CA1 1AA"}),
     "participants[0].contact.address", "is required when preferred_channel is letter"),
    (mutated(participants__0__contact="ann@example.org"), "participants[0].contact", "must be an object"),
    # age and booleans
    (mutated(participants__1__age=121), "participants[1].age", "must be a whole number of years from 1 to 120"),
    (mutated(participants__1__age=-1), "participants[1].age", "must be a whole number of years from 1 to 120"),
    (mutated(participants__1__age=True), "participants[1].age", "must be a whole number of years from 1 to 120"),
    (mutated(participants__1__age=False), "participants[1].age", "must be a whole number of years from 1 to 120"),
    (mutated(participants__1__age="19"), "participants[1].age", "must be a whole number of years from 1 to 120"),
    (mutated(participants__1__age=19.5), "participants[1].age", "must be a whole number of years from 1 to 120"),
    (mutated(participants__0__age=30), "participants[0].age", "does not match date_of_birth"),
    (mutated(participants__0__consent_to_contact=1), "participants[0].consent_to_contact", "must be true or false"),
    (mutated(participants__0__consent_to_contact="yes"), "participants[0].consent_to_contact",
     "must be true or false"),
    (mutated(offence__domestic_abuse=0), "offence.domestic_abuse", "must be true or false"),
    (mutated(offence__serious_violence="true"), "offence.serious_violence", "must be true or false"),
    # control characters, types, lengths, formats
    (mutated(participants__0__given_name="An\x00n"), "participants[0].given_name",
     "must not contain control characters"),
    (mutated(reason="ok\x07bell"), "reason", "must not contain control characters"),
    (mutated(offence__type="bur\x1bglary"), "offence.type", "must not contain control characters"),
    (mutated(participants__0__notes="del\x7f"), "participants[0].notes", "must not contain control characters"),
    (mutated(participants__0__given_name=5), "participants[0].given_name", "must be a string"),
    (mutated(county=["cumbria"]), "county", "must be a string"),
    (mutated(agency_reference="R" * 65), "agency_reference", "must be at most 64 characters"),
    (mutated(county="c" * 65), "county", "must be at most 64 characters"),
    (mutated(offence__type="x" * 121), "offence.type", "must be at most 120 characters"),
    (mutated(offence__type="x"), "offence.type", "must be at least 2 characters"),
    (mutated(participants__0__given_name="A" * 101), "participants[0].given_name", "must be at most 100 characters"),
    (mutated(participants__0__family_name="S" * 101), "participants[0].family_name",
     "must be at most 100 characters"),
    (mutated(participants__0__notes="n" * 2001), "participants[0].notes", "must be at most 2000 characters"),
    (mutated(participants__0__contact__address="a" * 301), "participants[0].contact.address",
     "must be at most 300 characters"),
    (mutated(reason="r" * 4001), "reason", "must be at most 4000 characters"),
    (mutated(agency_reference="-R1"), "agency_reference", "must start with a letter or digit"),
    (mutated(agency_reference="R1;drop"), "agency_reference", "must start with a letter or digit"),
    (mutated(county="Cumbria"), "county", "must be a county code"),
    (mutated(county="north yorkshire"), "county", "must be a county code"),
    (mutated(offence="burglary"), "offence", "must be an object"),
])
def test_each_rule_names_the_field_and_the_rule(data, field, rule):
    assert_violation(data, field, rule)


@pytest.mark.parametrize("field", ["agency_reference", "county", "initiated_by"])
def test_missing_field_gives_exactly_one_violation(field):
    assert violations(mutated(**{field: ...})) == [(field, "is required")]


def test_a_body_that_is_not_an_object_is_one_violation():
    for body in ([], "referral", 3, ["agency_reference"]):
        found = violations(body)
        assert len(found) == 1 and found[0][1] == "must be an object"


def test_no_body_reports_every_required_field():
    fields = {f for f, _ in violations(None)}
    assert {"agency_reference", "county", "offence", "offence.date", "offence.type", "offence.category",
            "initiated_by", "participants"} <= fields


def test_parent_or_guardian_needs_a_participant_under_18():
    data = valid_data()
    data["participants"].append({"role": "parent_or_guardian", "given_name": "Pat"})
    assert_violation(data, "participants", "a parent or guardian may only be listed for a participant under 18")


def test_a_young_parent_or_guardian_does_not_count_as_the_youth():
    data = valid_data()
    data["participants"].append({"role": "parent_or_guardian", "given_name": "Pat", "age": 17})
    assert_violation(data, "participants", "a parent or guardian may only be listed for a participant under 18")


def test_age_within_a_year_of_date_of_birth_is_accepted():
    draft = parse_draft(mutated(participants__0__age=44), today=TODAY)   # 45 by date of birth
    assert draft.participants[0].age == 44


def test_preferred_channel_with_its_detail_is_accepted():
    for channel, contact in [("email", {"email": "a@b.org"}), ("sms", {"phone": "07700 900123"}),
                             ("phone", {"phone": "(01228) 123-456"}), ("letter", {"address": "1 High St"})]:
        contact = dict(contact, preferred_channel=channel)
        draft = parse_draft(mutated(participants__0__contact=contact), today=TODAY)
        assert draft.participants[0].contact.preferred_channel == channel


# -- all violations at once ----------------------------------------------------------------
def test_every_violation_is_reported_at_once():
    data = mutated(agency_reference=..., county="North Yorks", offence__category="arson",
                   offence__date="2025-02-30", participants__0__contact__email="nope",
                   participants__1__age=200, reason="x" * 4001, extra=1)
    found = violations(data)
    fields = {f for f, _ in found}
    assert fields == {"agency_reference", "county", "offence.category", "offence.date",
                      "participants[0].contact.email", "participants[1].age", "reason", "extra"}
    assert len(found) == 8


def test_violations_in_several_participants_are_all_reported():
    data = valid_data()
    data["participants"] = [{"role": "victim", "given_name": "A", "age": 0.5},
                            {"role": "spy", "given_name": "B"},
                            {"role": "supporter"}]
    fields = {f for f, _ in violations(data)}
    assert {"participants[0].age", "participants[1].role", "participants[2].given_name"} <= fields


def test_validation_failed_message_lists_each_field():
    with pytest.raises(ValidationFailed) as info:
        parse_draft(mutated(county=..., initiated_by="x"), today=TODAY)
    assert "county: is required" in str(info.value)
    assert "initiated_by: must be one of" in str(info.value)
    assert all(isinstance(v, FieldViolation) for v in info.value.violations)


def test_today_decides_what_is_in_the_future():
    data = mutated(offence__date="2025-06-02", offence__reported_date=...)
    assert_violation(data, "offence.date", "must not be in the future", today=TODAY)
    assert parse_draft(data, today=TODAY + timedelta(days=1)).offence.date == "2025-06-02"


# -- the proto contract speaks the same words ------------------------------------------------
@pytest.mark.parametrize("enum_name, words", [
    ("OffenceCategory", OFFENCE_CATEGORIES), ("Initiator", INITIATORS), ("ParticipantRole", PARTICIPANT_ROLES),
    ("Vulnerability", VULNERABILITIES), ("ContactChannel", CONTACT_CHANNELS), ("ReferralStatus", ReferralStatus.ALL),
    ("AgencyKind", AGENCY_KINDS),
])
def test_proto_enums_match_the_vocabulary(enum_name, words):
    enum = pb.DESCRIPTOR.enum_types_by_name[enum_name]
    assert [enum_to_plain(enum, v.number) for v in enum.values if v.number] == list(words)


def test_a_draft_sent_over_grpc_parses_like_json():
    msg = pb.ReferralDraft(agency_reference="CUM/2025/0042", county="cumbria", initiated_by=pb.INITIATOR_OFFENDER_LED,
                           offence=pb.Offence(type="criminal damage", category=pb.OFFENCE_CATEGORY_CRIMINAL_DAMAGE,
                                              date="2025-01-10", serious_violence=True))
    msg.participants.add(role=pb.PARTICIPANT_ROLE_RESPONSIBLE_PERSON, given_name="Bob", age=15)
    guardian = msg.participants.add(role=pb.PARTICIPANT_ROLE_PARENT_OR_GUARDIAN, given_name="Pat")
    guardian.contact.phone = "01228 123456"
    guardian.contact.preferred_channel = pb.CONTACT_CHANNEL_SMS
    draft = parse_draft(message_to_plain(msg), today=TODAY)
    assert draft.offence.category == "criminal_damage" and draft.offence.flags == ["serious_violence"]
    assert [p.role for p in draft.participants] == ["responsible_person", "parent_or_guardian"]
    assert draft.participants[1].contact.preferred_channel == "sms"
    assert draft.participants[0].age == 15 and draft.participants[1].age is None     # proto 0 = not given


def test_an_unknown_enum_number_over_grpc_is_named():
    msg = pb.ReferralDraft(offence=pb.Offence(category=77))
    assert_violation(message_to_plain(msg), "offence.category", "must be one of")


# -- properties ----------------------------------------------------------------------------
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
KNOWN_KEYS = ["agency_reference", "county", "offence", "initiated_by", "participants", "reason", "type", "category",
              "date", "reported_date", *OFFENCE_FLAGS, "role", "given_name", "family_name", "date_of_birth", "age",
              "contact", "vulnerabilities", "consent_to_contact", "notes", "email", "phone", "address", "postcode",
              "preferred_channel"]
# Junk that uses the real field names, so it gets past the first checks more often.
shaped_values = st.recursive(
    json_scalars | st.sampled_from([*OFFENCE_CATEGORIES, *INITIATORS, "victim", "2025-01-01", "cumbria"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=5), children, max_size=8),
    max_leaves=40,
)


def _parse_only_validation_errors(data):
    try:
        result = parse_draft(data, today=TODAY)
    except ValidationFailed as failed:
        assert failed.violations
        for v in failed.violations:
            assert isinstance(v.field, str) and isinstance(v.rule, str) and v.rule
        return None
    assert isinstance(result, ReferralDraft)
    return result


@PROPERTY
@given(json_values)
def test_arbitrary_json_raises_only_validation_failed(data):
    _parse_only_validation_errors(data)


@PROPERTY
@given(shaped_values)
def test_junk_shaped_like_a_referral_raises_only_validation_failed(data):
    _parse_only_validation_errors(data)


ALL_VALID_PATHS = [p for p in json_paths(valid_data()) if p]


@PROPERTY
@given(st.sampled_from(ALL_VALID_PATHS), json_values)
def test_valid_draft_with_one_part_replaced_by_junk_raises_only_validation_failed(path, junk):
    data = valid_data()
    replace_at(data, path, junk)
    _parse_only_validation_errors(data)


# Valid drafts, generated.
names = st.text(alphabet=st.characters(categories=["L"]), min_size=1, max_size=30)
LOWER = "abcdefghijklmnopqrstuvwxyz"
ALNUM = LOWER + LOWER.upper() + "0123456789"


def _joined(*parts):
    return st.tuples(*parts).map("".join)


# Built from small pieces rather than st.from_regex, which is slow.
emails = _joined(st.text(ALNUM + "._+-", min_size=1, max_size=12), st.just("@"),
                 st.text(LOWER + "0123456789-", min_size=1, max_size=10), st.sampled_from([".org", ".co.uk", ".gov.uk"]))
phones = _joined(st.sampled_from(["", "+", "+44 ", "0"]), st.integers(1_000_000, 10**12).map(str))
references = _joined(st.sampled_from(ALNUM), st.text(ALNUM + " /_.:#-", max_size=30))
counties = _joined(st.sampled_from(LOWER), st.text(LOWER + "0123456789-", min_size=1, max_size=20))
offence_types = st.lists(st.sampled_from(["burglary", "dwelling", "assault", "of", "criminal", "damage", "theft"]),
                         min_size=1, max_size=4).map(" ".join)
free_text = st.text(alphabet=st.characters(exclude_categories=["Cc", "Cs"]), max_size=60)
past_days = st.dates(min_value=date(1900, 1, 1), max_value=TODAY)


@st.composite
def contacts(draw):
    contact = {}
    if draw(st.booleans()):
        contact["email"] = draw(emails)
    if draw(st.booleans()):
        contact["phone"] = draw(phones)
    if draw(st.booleans()):
        contact["address"] = draw(names)
    if draw(st.booleans()):
        contact["postcode"] = draw(st.sampled_from(["CA1 1AA", "la9 4rj", "M11AE", "SW1A 2AA"]))
    usable = ["via_referrer"] + [ch for ch, need in [("email", "email"), ("sms", "phone"), ("phone", "phone"),
                                                     ("letter", "address")] if need in contact]
    channel = draw(st.none() | st.sampled_from(usable))
    if channel:
        contact["preferred_channel"] = channel
    return contact


@st.composite
def participants(draw, role=None):
    p = {"role": role or draw(st.sampled_from(["victim", "responsible_person", "supporter"]))}
    which = draw(st.sampled_from(["given", "family", "both"]))
    if which in ("given", "both"):
        p["given_name"] = draw(names)
    if which in ("family", "both"):
        p["family_name"] = draw(names)
    how_old = draw(st.sampled_from(["dob", "age", "neither"]))
    if how_old == "dob":
        p["date_of_birth"] = draw(past_days).isoformat()
    elif how_old == "age":
        p["age"] = draw(st.integers(1, 120))
    if draw(st.booleans()):
        p["contact"] = draw(contacts())
    p["vulnerabilities"] = draw(st.lists(st.sampled_from(VULNERABILITIES), unique=True, max_size=4))
    p["consent_to_contact"] = draw(st.booleans())
    if draw(st.booleans()):
        p["notes"] = draw(free_text)
    return p


@st.composite
def valid_drafts(draw):
    offence_day = draw(st.dates(min_value=date(2000, 1, 1), max_value=TODAY))
    offence = {"type": draw(offence_types),
               "category": draw(st.sampled_from(OFFENCE_CATEGORIES)), "date": offence_day.isoformat()}
    if draw(st.booleans()):
        offence["reported_date"] = draw(st.dates(min_value=offence_day, max_value=TODAY)).isoformat()
    for flag in OFFENCE_FLAGS:
        if draw(st.booleans()):
            offence[flag] = draw(st.booleans())
    initiated_by = draw(st.sampled_from(INITIATORS))
    lead = "victim" if initiated_by == "victim_led" else "responsible_person"
    people = [draw(participants(role=lead))] + draw(st.lists(participants(), max_size=4))
    data = {"agency_reference": draw(references), "county": draw(counties),
            "offence": offence, "initiated_by": initiated_by, "participants": people}
    if draw(st.booleans()):
        data["reason"] = draw(free_text)
    return data


def _as_input(value):
    """to_dict() output as a caller would send it: lists, not tuples; absent, not None."""
    if isinstance(value, dict):
        return {k: _as_input(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_as_input(v) for v in value]
    return value


@PROPERTY
@given(valid_drafts())
def test_round_trip_through_to_dict_gives_an_equal_draft(data):
    draft = parse_draft(data, today=TODAY)
    assert draft.county == data["county"]
    assert [p.role for p in draft.participants] == [p["role"] for p in data["participants"]]
    again = parse_draft(_as_input(draft.to_dict()), today=TODAY)
    assert again == draft
    assert again.fingerprint() == draft.fingerprint()
    # The same through JSON, as the draft travels in events (None kept, tuples become lists).
    via_json = parse_draft(json.loads(json.dumps(draft.to_dict())), today=TODAY)
    assert via_json == draft


@PROPERTY
@given(valid_drafts(), st.data())
def test_fingerprint_is_stable_and_follows_every_participant_name(data, more):
    draft = parse_draft(data, today=TODAY)
    assert parse_draft(copy.deepcopy(data), today=TODAY).fingerprint() == draft.fingerprint()
    assert len(draft.fingerprint()) == 64

    i = more.draw(st.integers(0, len(data["participants"]) - 1), label="participant")
    which = more.draw(st.sampled_from(["given_name", "family_name"]), label="name")
    old = data["participants"][i].get(which, "")
    new = more.draw(names.filter(lambda n: n != old), label="new name")
    changed = copy.deepcopy(data)
    changed["participants"][i][which] = new
    assert parse_draft(changed, today=TODAY).fingerprint() != draft.fingerprint()


@settings(PROPERTY, max_examples=50)
@given(valid_drafts(), st.sampled_from(["reason", "agency_reference"]), free_text)
def test_fingerprint_changes_with_other_content(data, key, text):
    draft = parse_draft(data, today=TODAY)
    changed = dict(data, **{key: text})
    try:
        other = parse_draft(changed, today=TODAY)
    except ValidationFailed:
        return
    assume(getattr(other, key) != getattr(draft, key))
    assert other.fingerprint() != draft.fingerprint()


def test_to_dict_has_exactly_the_shape_of_the_dataclasses():
    """to_dict is written by hand for speed; it must stay equal to dataclasses.asdict (with the
    tuple of participants and of vulnerabilities as lists, as JSON has them)."""
    import dataclasses
    import json as _json
    draft = parse_draft(valid_data(), today=TODAY)
    assert _json.loads(_json.dumps(draft.to_dict())) == _json.loads(_json.dumps(dataclasses.asdict(draft)))
