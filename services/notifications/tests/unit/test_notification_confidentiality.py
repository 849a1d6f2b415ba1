"""One party's details never reach another party unless a coordinator released them: what a
message may be built from (released_context) and what the finished text is checked for
(leaked_details)."""
from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from notification_examples import PARTIES, PROPERTY, RESPONSIBLE, SUPPORTER, VICTIM
from mend_notifications.domain.policy import leaked_details, other_party_names, released_context
from mend_notifications.domain.vocabulary import PARTY_DETAIL_FIELDS


# =============================================================================================
# 1. released_context
# =============================================================================================
def test_a_recipient_sees_their_own_details_and_only_what_was_released_to_them():
    releases = [(RESPONSIBLE, VICTIM, "given_name"), (RESPONSIBLE, SUPPORTER, "family_name"),
                (VICTIM, RESPONSIBLE, "given_name")]
    assert released_context(VICTIM, PARTIES, releases) == {
        VICTIM: PARTIES[VICTIM],
        RESPONSIBLE: {"given_name": "Jordan"},
    }
    # Released to the supporter is not released to the victim, and vice versa.
    assert released_context(SUPPORTER, PARTIES, releases) == {
        SUPPORTER: PARTIES[SUPPORTER], RESPONSIBLE: {"family_name": "Blackwood"}}
    assert released_context(RESPONSIBLE, PARTIES, []) == {RESPONSIBLE: PARTIES[RESPONSIBLE]}


def test_a_release_of_a_field_the_party_does_not_have_shows_nothing():
    assert released_context(VICTIM, {VICTIM: {}, "p2": {"given_name": "Al"}}, [("p2", VICTIM, "email")]) == {VICTIM: {}}


def test_other_party_names_joins_what_was_released():
    assert other_party_names(VICTIM, PARTIES, []) == []
    assert other_party_names(VICTIM, PARTIES, [(RESPONSIBLE, VICTIM, "given_name")]) == ["Jordan"]
    assert other_party_names(VICTIM, PARTIES, [(RESPONSIBLE, VICTIM, "family_name"),
                                               (RESPONSIBLE, VICTIM, "given_name"),
                                               (SUPPORTER, VICTIM, "given_name")]) == ["Jordan Blackwood", "Carys"]


pids = st.sampled_from(["p1", "p2", "p3", "p4"])
parties_st = st.dictionaries(pids, st.dictionaries(st.sampled_from(PARTY_DETAIL_FIELDS + ("date_of_birth",)),
                                                   st.text(min_size=1, max_size=8)), min_size=1)
releases_st = st.lists(st.tuples(pids, pids, st.sampled_from(PARTY_DETAIL_FIELDS + ("date_of_birth",))), max_size=12)


@PROPERTY
@given(parties_st, releases_st, pids)
def test_released_context_never_holds_an_unreleased_field_of_another_party(parties, releases, recipient):
    seen = released_context(recipient, parties, releases)
    for pid, fields in seen.items():
        if pid == recipient:
            assert fields == parties[pid]
            continue
        assert fields, "a party with nothing released is left out"
        for field, value in fields.items():
            assert (pid, recipient, field) in releases
            assert parties[pid][field] == value
    # And everything released (that exists) is there.
    for about, to, field in releases:
        if to == recipient and about != recipient and about in parties and field in parties[about]:
            assert seen[about][field] == parties[about][field]


# =============================================================================================
# 2. leaked_details: the finished text, checked
# =============================================================================================
R = RESPONSIBLE


@pytest.mark.parametrize("text, releases, leaked", [
    ("Dear Siân Pritchard, your meeting is at Penrith Library.", [], []),
    ("Dear Siân, you will meet Jordan.", [], [f"{R}.given_name"]),
    ("Dear Siân, you will meet JORDAN.", [], [f"{R}.given_name"]),           # any case
    ("Dear Siân, you will meet Jordan.", [(R, VICTIM, "given_name")], []),    # released
    ("Dear Siân, meet us at the Jordanstown Centre.", [], []),                  # whole words only
    ("Dear Siân, Mr Blackwood has agreed.", [], [f"{R}.family_name"]),
    ("Dear Siân, Mr Blackwood has agreed.", [(R, VICTIM, "given_name")], [f"{R}.family_name"]),
    ("Write to jb1999@example.net", [], [f"{R}.email"]),
    ("Write to JB1999@Example.NET.", [], [f"{R}.email"]),
    ("Call 07700 900456", [], [f"{R}.phone"]),                                 # +44 stored, 0 written
    ("Call 07700-900-456", [], [f"{R}.phone"]),
    ("Call +447700900456", [], [f"{R}.phone"]),
    ("Call 077009004567", [], []),                                             # a longer number is another
    ("Post code ca118bn", [], [f"{R}.postcode"]),
    ("Post code CA11 8BN.", [(R, VICTIM, "postcode")], []),
    ("He lives at 3 Beacon Edge, Penrith", [], [f"{R}.address"]),
    ("He lives at 3 beacon   edge", [], [f"{R}.address"]),
    ("The meeting is in Penrith", [], []),                                     # a town is not an address
    # Shared details: the victim's own family name and address are also the supporter's.
    ("Dear Siân Pritchard, Flat 2, 14 Castle Street, Penrith CA11 7PT", [], []),
    # But the supporter's given name is hers alone.
    ("Dear Siân, Carys will come with you.", [], [f"{SUPPORTER}.given_name"]),
    # Accents do not hide a name.
    ("Dear Sian", [], []),
    ("Jordan Blackwood, 3 Beacon Edge, CA11 8BN, 07700900456, jb1999@example.net", [],
     [f"{R}.given_name", f"{R}.family_name", f"{R}.email", f"{R}.phone", f"{R}.address", f"{R}.postcode"]),
])
def test_leaked_details_to_the_victim(text, releases, leaked):
    assert leaked_details(text, VICTIM, PARTIES, releases) == leaked


def test_leaks_are_named_by_party_and_field_never_by_value():
    found = leaked_details("Siân Pritchard lives at 14 Castle Street", RESPONSIBLE, PARTIES, [])
    assert found == [f"{SUPPORTER}.family_name", f"{SUPPORTER}.address",          # in participant id order
                     f"{VICTIM}.given_name", f"{VICTIM}.family_name", f"{VICTIM}.address"]
    assert not any("Pritchard" in f for f in found)


def test_accents_and_curly_quotes_do_not_hide_a_name():
    parties = {"a": {"given_name": "Sam"}, "b": {"given_name": "Siôn", "family_name": "O'Brien"}}
    assert leaked_details("Dear Sam, Sion O’Brien wrote.", "a", parties, []) == ["b.given_name", "b.family_name"]


def test_a_released_detail_excuses_only_itself_not_the_unreleased_detail_around_it():
    parties = {"a": {"given_name": "Sam", "address": "4 Morgan Road"},
               "b": {"family_name": "Morgan", "address": "11 Morgan Road"}}
    released = [("b", "a", "family_name")]
    assert leaked_details("Dear Sam, Mr Morgan agreed.", "a", parties, released) == []
    assert leaked_details("Mr Morgan of 11 Morgan Road", "a", parties, released) == ["b.address"]
    # Unreleased, the family name inside the recipient's own street is still no leak...
    assert leaked_details("Dear Sam, 4 Morgan Road", "a", parties, []) == []
    # ...but on its own it is.
    assert leaked_details("Dear Sam, Mr Morgan agreed.", "a", parties, []) == ["b.family_name"]


def test_values_shorter_than_three_characters_are_not_tested():
    parties = {"a": {"given_name": "Sam"}, "b": {"given_name": "Al", "family_name": "Ng", "postcode": "E1"}}
    assert leaked_details("Al Ng of E1 said hello", "a", parties, []) == []


def test_a_party_missing_details_or_with_non_text_values_is_fine():
    parties = {"a": {"given_name": "Sam"}, "b": {"phone": None, "email": 12345, "address": ""}}
    assert leaked_details("Dear Sam", "a", parties, []) == []


names = ["Aled", "Bethan", "Cerys", "Dafydd", "Eleri", "Ffion", "Gareth", "Heledd", "Iwan", "Llinos"]
families = ["Morgan", "Rees", "Hughes", "Price", "Lloyd", "Owen", "Parry", "Vaughan"]
# No vowels or digits: filler can never spell a name, a postcode or a phone number by chance.
filler = st.text(st.sampled_from("qxzjkvw ,.\n"), max_size=40).map(lambda s: f" {s} ")


@st.composite
def cast(draw):
    """Three parties with distinct details, and a random set of releases."""
    given_names = draw(st.permutations(names))[:3]
    family_names = draw(st.permutations(families))[:3]
    parties = {}
    for i, pid in enumerate(["p1", "p2", "p3"]):
        parties[pid] = {"given_name": given_names[i], "family_name": family_names[i],
                        "email": f"{given_names[i].lower()}{i}@example.org", "phone": f"0770090{i}{i}{i}{i}",
                        "address": f"{10 + i} {family_names[i]} Road", "postcode": f"CA{i + 1} {i}ZZ"}
    releases = draw(st.lists(st.tuples(st.sampled_from(["p2", "p3"]), st.just("p1"),
                                       st.sampled_from(PARTY_DETAIL_FIELDS)), max_size=6))
    return parties, releases


@PROPERTY
@given(cast(), st.sampled_from(["p2", "p3"]), st.sampled_from(PARTY_DETAIL_FIELDS), filler, filler,
       st.sampled_from([str, str.upper, str.lower]))
def test_any_unreleased_detail_of_another_party_is_caught(cast_, about, field, before, after, case):
    parties, releases = cast_
    assume((about, "p1", field) not in releases)
    value = parties[about][field]
    text = before + case(value) + after
    assert f"{about}.{field}" in leaked_details(text, "p1", parties, releases)


@PROPERTY
@given(cast(), st.lists(filler, min_size=1, max_size=4))
def test_a_text_of_only_own_and_released_details_is_clean(cast_, fillers):
    parties, releases = cast_
    allowed = list(parties["p1"].values()) + [parties[a][f] for a, _, f in releases]
    text = "".join(fillers[i % len(fillers)] + v for i, v in enumerate(allowed)) + fillers[-1]
    assert all(v in text for v in allowed)
    # A released address holds its party's family name; released, the address excuses it.
    assert leaked_details(text, "p1", parties, releases) == []
