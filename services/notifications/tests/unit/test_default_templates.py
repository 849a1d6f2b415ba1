"""The templates a deployment starts with: one for every message type and text channel in both
languages, each valid, each rendering its sample values (with and without the optional ones),
and none naming the other party unless that name was released."""
from __future__ import annotations

import pytest

from notification_examples import PARTIES, RESPONSIBLE, VICTIM
from mend_notifications.domain.default_templates import DEFAULT_TEMPLATES, default_template
from mend_notifications.domain.policy import leaked_details, other_party_names
from mend_notifications.domain.templates import render, sample_context, sms_parts, validate_template
from mend_notifications.domain.vocabulary import (MESSAGE_TYPES, OPTIONAL_FIELDS, STAFF_ALERTS, TEMPLATE_CHANNELS,
                                                  label)

KEYS = sorted(DEFAULT_TEMPLATES)


def test_there_is_a_default_for_every_message_type_and_text_channel_in_english_and_welsh():
    expected = {(t, c, lang) for t in MESSAGE_TYPES for c in TEMPLATE_CHANNELS[t] for lang in ("en", "cy")}
    assert set(DEFAULT_TEMPLATES) == expected
    assert len(expected) == 42
    assert all(t.version == 1 and t.key == key for key, t in DEFAULT_TEMPLATES.items())


def test_staff_alerts_are_email_only_and_participants_get_email_text_and_letter():
    for (message_type, channel, _), _t in DEFAULT_TEMPLATES.items():
        if message_type in STAFF_ALERTS:
            assert channel == "email"
    assert {c for (t, c, _) in DEFAULT_TEMPLATES if t == "meeting_scheduled"} == {"email", "sms", "letter"}
    assert "webhook" not in {c for (_, c, _) in DEFAULT_TEMPLATES}


@pytest.mark.parametrize("key", KEYS, ids=["/".join(k) for k in KEYS])
def test_each_default_is_valid_and_renders_its_sample_values(key):
    t = DEFAULT_TEMPLATES[key]
    assert validate_template(t.message_type, t.channel, t.language, t.subject, t.body) == []
    full = sample_context(t.message_type, t.language)
    for context in (full, {k: v for k, v in full.items() if k not in OPTIONAL_FIELDS}):
        out = render(t, context)
        assert out.body and "{{" not in out.body + out.subject and "{%" not in out.body
        assert "None" not in out.body
        if t.channel == "sms":
            assert out.subject == "" and sms_parts(out.body) <= 3     # headroom for long names
        else:
            assert out.subject
        if t.channel != "sms":
            assert out.body.startswith("Dear " if t.language == "en" else "Annwyl ")
            assert out.body.startswith(("Dear Sam Taylor,", "Annwyl Sam Taylor,"))


@pytest.mark.parametrize("key", [k for k in KEYS if k[2] == "cy"], ids=lambda k: "/".join(k))
def test_the_welsh_is_not_the_english_copied(key):
    cy, en = DEFAULT_TEMPLATES[key], DEFAULT_TEMPLATES[key[:2] + ("en",)]
    assert cy.body != en.body
    english_words = {"dear", "please", "your", "meeting", "thank", "regards", "reminder"}
    rendered = render(cy, sample_context(cy.message_type, "cy"))
    words = {w.strip(".,:;()").lower() for w in (rendered.subject + " " + rendered.body).split()}
    # Sample values such as venue names are English; the template's own words are not.
    assert not (english_words & words), english_words & words


def test_a_meeting_message_names_the_other_party_only_when_released():
    t = DEFAULT_TEMPLATES[("meeting_scheduled", "email", "en")]
    context = sample_context("meeting_scheduled", "en") | {"recipient_name": "Siân Pritchard"}
    context.pop("other_party_name")
    out = render(t, context)
    assert "Jordan" not in out.body and "Also taking part" not in out.body
    assert leaked_details(out.subject + "\n" + out.body, VICTIM, PARTIES, []) == []

    releases = [(RESPONSIBLE, VICTIM, "given_name")]
    names = other_party_names(VICTIM, PARTIES, releases)
    assert names == ["Jordan"]
    out = render(t, context | {"other_party_name": " and ".join(names)})
    assert "Also taking part: Jordan" in out.body
    assert leaked_details(out.body, VICTIM, PARTIES, releases) == []
    # The same message to the victim without that release is refused by the second check.
    assert leaked_details(out.body, VICTIM, PARTIES, []) == [f"{RESPONSIBLE}.given_name"]


def test_default_template_falls_back_to_english_only_when_there_is_no_welsh():
    assert default_template("meeting_reminder", "sms", "cy").language == "cy"
    assert default_template("meeting_reminder", "webhook", "cy") is None


@pytest.mark.parametrize("kind, word, language, text", [
    ("meeting_kind", "conference", "en", "restorative meeting"),
    ("meeting_kind", "conference", "cy", "cyfarfod adferol"),
    ("referral_status", "rejected", "cy", "heb ei dderbyn"),
    ("clock", "support_referral", "en", "referral to victim support"),
    ("level", "very_high", "cy", "uchel iawn"),
    ("meeting_kind", "walk_and_talk", "cy", "walk and talk"),     # unknown: shown as it is
])
def test_labels(kind, word, language, text):
    assert label(kind, word, language) == text
