"""mend_common.proto_convert: proto messages to the plain data the domain reads, and back."""
from __future__ import annotations

import pytest

from mend.referrals.v1 import referrals_pb2 as pb
from mend_common.proto_convert import enum_to_plain, message_to_plain, plain_to_enum, plain_to_message

CATEGORY = pb.DESCRIPTOR.enum_types_by_name["OffenceCategory"]
ROLE = pb.DESCRIPTOR.enum_types_by_name["ParticipantRole"]
CHANNEL = pb.DESCRIPTOR.enum_types_by_name["ContactChannel"]
KIND = pb.DESCRIPTOR.enum_types_by_name["AgencyKind"]


def full_draft() -> pb.ReferralDraft:
    msg = pb.ReferralDraft(
        agency_reference="CUM-1", county="cumbria", reason="asked for RJ",
        offence=pb.Offence(type="burglary dwelling", category=pb.OFFENCE_CATEGORY_BURGLARY, date="2025-01-10",
                           hate_crime=True),
        initiated_by=pb.INITIATOR_VICTIM_LED)
    victim = msg.participants.add(role=pb.PARTICIPANT_ROLE_VICTIM, given_name="Ann", age=40, consent_to_contact=True)
    victim.contact.email = "ann@example.org"
    victim.contact.preferred_channel = pb.CONTACT_CHANNEL_EMAIL
    victim.vulnerabilities.extend([pb.VULNERABILITY_INTIMIDATED, pb.VULNERABILITY_LANGUAGE_NEEDS])
    msg.participants.add(role=pb.PARTICIPANT_ROLE_RESPONSIBLE_PERSON, family_name="Jones")
    return msg


def test_enum_numbers_become_short_lower_case_names():
    assert enum_to_plain(CATEGORY, pb.OFFENCE_CATEGORY_BURGLARY) == "burglary"
    assert enum_to_plain(CATEGORY, pb.OFFENCE_CATEGORY_VIOLENCE_AGAINST_THE_PERSON) == "violence_against_the_person"
    assert enum_to_plain(ROLE, pb.PARTICIPANT_ROLE_PARENT_OR_GUARDIAN) == "parent_or_guardian"
    assert enum_to_plain(CHANNEL, pb.CONTACT_CHANNEL_VIA_REFERRER) == "via_referrer"
    assert enum_to_plain(KIND, pb.AGENCY_KIND_YOUTH_OFFENDING_TEAM) == "youth_offending_team"


def test_unspecified_is_none_and_unknown_numbers_stay_numbers():
    assert enum_to_plain(CATEGORY, 0) is None
    assert enum_to_plain(CATEGORY, 99) == 99


def test_short_names_go_back_to_numbers():
    for value in CATEGORY.values:
        plain = enum_to_plain(CATEGORY, value.number)
        assert plain_to_enum(CATEGORY, plain) == value.number
    assert plain_to_enum(CATEGORY, "BURGLARY") == pb.OFFENCE_CATEGORY_BURGLARY
    assert plain_to_enum(CATEGORY, "arson") == 0
    assert plain_to_enum(CATEGORY, "") == 0 and plain_to_enum(CATEGORY, None) == 0


def test_message_to_plain_converts_nested_and_repeated_fields():
    assert message_to_plain(full_draft()) == {
        "agency_reference": "CUM-1", "county": "cumbria", "reason": "asked for RJ",
        "offence": {"type": "burglary dwelling", "category": "burglary", "date": "2025-01-10", "hate_crime": True},
        "initiated_by": "victim_led",
        "participants": [
            {"role": "victim", "given_name": "Ann", "age": 40, "consent_to_contact": True,
             "contact": {"email": "ann@example.org", "preferred_channel": "email"},
             "vulnerabilities": ["intimidated", "language_needs"]},
            {"role": "responsible_person", "family_name": "Jones"},
        ],
    }


def test_defaults_and_unspecified_enums_are_omitted():
    msg = pb.ReferralDraft(county="cumbria", initiated_by=pb.INITIATOR_UNSPECIFIED,
                           offence=pb.Offence(category=pb.OFFENCE_CATEGORY_UNSPECIFIED, domestic_abuse=False))
    msg.participants.add(role=pb.PARTICIPANT_ROLE_UNSPECIFIED, age=0)
    assert message_to_plain(msg) == {"county": "cumbria", "offence": {}, "participants": [{}]}
    assert message_to_plain(pb.ReferralDraft()) == {}


def test_unknown_enum_numbers_are_kept_for_the_domain_to_reject():
    msg = full_draft()
    msg.offence.category = 77
    msg.participants[0].contact.preferred_channel = 42
    msg.participants[0].vulnerabilities.append(99)
    plain = message_to_plain(msg)
    assert plain["offence"]["category"] == 77
    assert plain["participants"][0]["contact"]["preferred_channel"] == 42
    assert plain["participants"][0]["vulnerabilities"] == ["intimidated", "language_needs", 99]


def test_timestamps_are_plain_nested_messages():
    msg = pb.Agency(agency_id="a1", name="Police", kind=pb.AGENCY_KIND_POLICE)
    msg.created_at.seconds = 1_700_000_000
    assert message_to_plain(msg) == {"agency_id": "a1", "name": "Police", "kind": "police",
                                     "created_at": {"seconds": 1_700_000_000}}


def test_plain_to_message_is_the_inverse():
    plain = message_to_plain(full_draft())
    rebuilt = plain_to_message(plain, pb.ReferralDraft())
    assert rebuilt == full_draft()
    assert message_to_plain(rebuilt) == plain


def test_plain_to_message_skips_none():
    msg = plain_to_message({"county": None, "offence": {"date": None, "type": "theft"}}, pb.ReferralDraft())
    assert message_to_plain(msg) == {"offence": {"type": "theft"}}


@pytest.mark.parametrize("plain, fragment", [
    ({"colour": "blue"}, "colour: is not a recognised field"),
    ({"offence": {"weapon": "knife"}}, "offence.weapon: is not a recognised field"),
    ({"offence": {"category": "arson"}}, "offence.category: must be one of: violence_against_the_person"),
    ({"offence": {"category": 5}}, "offence.category: must be one of"),
    ({"initiated_by": "unspecified"}, "initiated_by: must be one of"),
    ({"participants": {"role": "victim"}}, "participants: must be a list"),
    ({"participants": ["victim"]}, "participants[0]: must be an object"),
    ({"participants": [{"vulnerabilities": ["psychic"]}]}, "participants[0].vulnerabilities[0]: must be one of"),
    ({"participants": [{"age": "forty"}]}, "participants[0].age: has the wrong type"),
    ({"county": ["cumbria"]}, "county: must be a single value"),
    ({"offence": "burglary"}, "offence: must be an object"),
])
def test_plain_to_message_names_the_bad_field(plain, fragment):
    with pytest.raises(ValueError) as info:
        plain_to_message(plain, pb.ReferralDraft())
    assert fragment in str(info.value)


def test_plain_to_message_refuses_a_non_object():
    with pytest.raises(ValueError, match="body: must be an object"):
        plain_to_message(["x"], pb.ReferralDraft())
