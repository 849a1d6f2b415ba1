"""Templates: what validation refuses (naming the field and the rule), how rendering behaves, and
the sandbox - a template can never reach past its own values, whatever it is given."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError

from notification_examples import FEWER, london, utc
from mend_notifications.domain import templates as T
from mend_notifications.domain.templates import (MAX_BODY_CHARS, MAX_SMS_BODY_CHARS, MAX_SUBJECT_CHARS, SAMPLE_CONTEXT,
                                                 Rendered, Template, TemplateProblem, checked_template, date_text,
                                                 local_text, preview, render, sample_context, sms_parts,
                                                 validate_template)
from mend_notifications.domain.vocabulary import CONTEXT_FIELDS, MESSAGE_TYPES, OPTIONAL_FIELDS, TEMPLATE_CHANNELS

MEETING_BODY = "Dear {{ recipient_name }}, your {{ meeting_kind }} is at {{ venue_name }}."


def problems(subject="Hello", body=MEETING_BODY, message_type="meeting_scheduled", channel="email", language="en"):
    return validate_template(message_type, channel, language, subject, body)


# =============================================================================================
# 1. Validation: each rule, named by field, with what is wrong
# =============================================================================================
@pytest.mark.parametrize("message_type, channel, language", [
    ("meeting_scheduled", "email", "en"), ("meeting_scheduled", "sms", "cy"), ("meeting_scheduled", "letter", "en"),
])
def test_a_plain_template_for_each_text_channel_passes(message_type, channel, language):
    subject = "" if channel == "sms" else "Your meeting"
    assert validate_template(message_type, channel, language, subject, MEETING_BODY) == []


@pytest.mark.parametrize("kw, expected", [
    (dict(message_type="party_invite"), ("message_type", "'party_invite' is not one of referral_status, "
                                                         "case_accepted, case_rejected, consent_requested, "
                                                         "meeting_scheduled, meeting_rescheduled, meeting_cancelled, "
                                                         "meeting_reminder, outcome_item_overdue, victims_code_breach, "
                                                         "risk_approval_requested")),
    (dict(channel="fax"), ("channel", "'fax' is not one of email, sms, letter, webhook")),
    (dict(language="fr"), ("language", "'fr' is not one of en, cy")),
    (dict(channel="webhook"), ("channel", "a webhook carries the event as JSON and has no text template")),
    (dict(message_type="victims_code_breach", channel="sms", subject="", body="{{ case_reference }}"),
     ("channel", "victims_code_breach messages are not sent by sms (only email)")),
    (dict(message_type="case_accepted", channel="letter", body="{{ case_reference }}"),
     ("channel", "case_accepted messages are not sent by letter (only email)")),
    (dict(body="Dear {{ recipient_name }},\n\nsee you\n{{ venue_name }"),
     ("body", "syntax error on line 4: unexpected '}'")),
    (dict(body="line one\n{% if venue_name %}\nno end"),
     ("body", "syntax error on line 3: Unexpected end of template. Jinja was looking for the following tags: "
              "'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.")),
    (dict(subject="Hi {{ recipient_name"), ("subject", "syntax error on line 1: unexpected end of template, "
                                                       "expected 'end of print statement'.")),
    (dict(body="Born {{ date_of_birth }}"), ("body", "line 1: 'date_of_birth' is not a value of meeting_scheduled "
                                                     "messages")),
    (dict(body="{{ reason }}"), ("body", "line 1: 'reason' is not a value of meeting_scheduled messages")),
    (dict(subject="For {{ agency_name }}"), ("subject", "line 1: 'agency_name' is not a value of meeting_scheduled "
                                                        "messages")),
    (dict(body=""), ("body", "is required")),
    (dict(body=" \n\t "), ("body", "is required")),
    (dict(body="x" * (MAX_BODY_CHARS + 1)), ("body", "must be at most 10000 characters (it has 10001)")),
    (dict(subject="s" * (MAX_SUBJECT_CHARS + 1)), ("subject", "must be at most 200 characters (it has 201)")),
    (dict(channel="sms", subject="Hi"), ("subject", "a text message has no subject")),
    (dict(channel="sms", subject="", body="x" * (MAX_SMS_BODY_CHARS + 1)),
     ("body", "must be at most 612 characters (it has 613)")),
    (dict(subject=""), ("subject", "is required for email")),
    (dict(body="a\x00b"), ("body", "must not contain NUL characters")),
    (dict(subject="a\x00b"), ("subject", "must not contain NUL characters")),
    (dict(body="bell\x07"), ("body", "must not contain control characters")),
    (dict(subject="one\ntwo"), ("subject", "must be one line")),
    (dict(body=None), ("body", "must be text")),
])
def test_validation_names_the_field_and_the_rule(kw, expected):
    assert expected in problems(**kw)


def test_every_problem_is_reported_not_just_the_first():
    found = problems(subject="s" * 201, body="\x00")
    assert ("subject", "must be at most 200 characters (it has 201)") in found
    assert ("body", "must not contain NUL characters") in found


def test_a_letter_may_have_a_subject_or_none_and_an_sms_body_of_612_characters_passes():
    assert problems(channel="letter", subject="") == []
    assert problems(channel="sms", subject="", body="x" * MAX_SMS_BODY_CHARS) == []
    assert problems(body="x" * MAX_BODY_CHARS) == []


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
def test_every_value_of_a_message_type_may_be_used_and_nothing_else(message_type):
    channel = TEMPLATE_CHANNELS[message_type][0]
    fields = sorted(CONTEXT_FIELDS[message_type])
    body = "\n".join(f"{{% if {f} is defined %}}{{{{ {f} }}}}{{% endif %}}" if f in OPTIONAL_FIELDS
                     else f"{{{{ {f} }}}}" for f in fields)
    assert validate_template(message_type, channel, "en", "s", body) == []
    others = sorted(set().union(*CONTEXT_FIELDS.values()) - CONTEXT_FIELDS[message_type])
    for name in others:
        assert (("body", f"line 1: {name!r} is not a value of {message_type} messages")
                in validate_template(message_type, channel, "en", "s", f"{{{{ {name} }}}}"))


def test_an_optional_value_must_be_tested_before_use():
    found = problems(body="You will meet {{ other_party_name }}.")
    assert found == [("body", "with sample values: a value is missing: 'other_party_name' is undefined")]
    assert problems(body="{% if other_party_name is defined %}You will meet {{ other_party_name }}.{% endif %}"
                         " See you there.") == []
    # Truth-testing a missing value is not enough with strict undefined values.
    assert problems(body="{% if arrival_note %}{{ arrival_note }}{% endif %}x")


def test_a_template_that_cannot_render_its_sample_values_is_refused():
    found = problems(message_type="meeting_reminder", body="{{ hours_before + recipient_name }}")
    assert len(found) == 1 and found[0][0] == "body" and "TypeError" in found[0][1]


def test_an_sms_whose_sample_rendering_takes_more_than_four_parts_is_refused():
    body = "{{ service_name }} " + "ŵ" * 260      # UCS-2: 67 characters a part
    assert problems(channel="sms", subject="", body=body) == [
        ("body", "with sample values: the text message would need 5 parts; at most 4")]


# =============================================================================================
# 2. The sandbox: what a template may not do (validation refuses, rendering refuses again)
# =============================================================================================
SSTI = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__['__builtins__'] }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ recipient_name.__class__.__base__.__subclasses__() }}",
    "{{ recipient_name|attr('__class__') }}",
    "{{ recipient_name['__class__'] }}",
    "{{ self.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ config.items() }}",
    "{{ request.application.__globals__ }}",
    "{{ recipient_name.format(recipient_name) }}",
    "{{ recipient_name.upper() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{% set x = recipient_name.__class__ %}{{ x }}",
    "{% include '/etc/passwd' %}",
    "{% extends 'base.txt' %}",
    "{% import 'x' as y %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{{ 'a' * 1000000000 }}",
    "{{ 9 ** 9 ** 9 }}",
    "{{ '%999999999s' % recipient_name }}",
    "{{ recipient_name|center(999999999) }}",
    "{{ recipient_name|replace('a', recipient_name ~ recipient_name) }}",
    "{{ range(99999999)|list }}",
    "{{ {'a': 1} }}",
    "{% filter upper %}x{% endfilter %}",
    "{% with a = 1 %}{{ a }}{% endwith %}",
    "{{ loop }}",
]


@pytest.mark.parametrize("payload", SSTI)
def test_validation_refuses_template_injection_and_expensive_constructs(payload):
    found = problems(body=payload)
    assert found and all(field == "body" for field, _ in found)


@pytest.mark.parametrize("payload", SSTI)
def test_rendering_a_template_nobody_validated_refuses_it_too(payload):
    unchecked = Template("meeting_scheduled", "email", "en", 1, "s", payload)
    with pytest.raises(TemplateProblem):
        render(unchecked, SAMPLE_CONTEXT["meeting_scheduled"])


@pytest.mark.parametrize("source", [
    "{{ ''.__class__ }}", "{{ x.__class__.__mro__ }}", "{{ x|attr('__class__') }}", "{{ 'a' * 3 }}",
    "{{ 2 ** 3 }}", "{{ x.upper() }}", "{{ cycler }}",
])
def test_the_sandbox_itself_refuses_even_without_validation(source):
    """The second line of defence: the environment alone, given source validation would refuse."""
    from jinja2.exceptions import TemplateAssertionError, UndefinedError
    with pytest.raises((SecurityError, UndefinedError, TemplateAssertionError)):
        T._ENV.from_string(source).render(x="text")


def test_values_are_printed_never_evaluated():
    t = checked_template("meeting_scheduled", "email", "en", "Hi {{ recipient_name }}", MEETING_BODY)
    hostile = dict(SAMPLE_CONTEXT["meeting_scheduled"], recipient_name="{{ 7*7 }} {% include 'x' %}",
                   venue_name="{{ ''.__class__ }}")
    out = render(t, hostile)
    assert out.subject == "Hi {{ 7*7 }} {% include 'x' %}"
    assert "{{ ''.__class__ }}" in out.body and "49" not in out.body


def _ssti_expressions():
    base = st.sampled_from(["''", "recipient_name", "cycler", "self", "lipsum", "[]", "()", "joiner", "namespace"])
    attr = st.sampled_from(["__class__", "__mro__", "__subclasses__", "__init__", "__globals__", "__builtins__",
                            "__dict__", "mro", "format", "__getitem__", "_TemplateReference__context", "os"])
    step = st.one_of(attr.map(lambda a: f".{a}"), attr.map(lambda a: f"['{a}']"),
                     attr.map(lambda a: f"|attr('{a}')"), st.just("()"), st.just("[1]"))
    return st.tuples(base, st.lists(step, min_size=1, max_size=5)).map(lambda t: "{{ " + t[0] + "".join(t[1]) + " }}")


@FEWER
@given(_ssti_expressions())
def test_no_chain_of_attributes_items_and_calls_gets_through(expression):
    assert problems(body=expression)
    with pytest.raises(TemplateProblem):
        render(Template("meeting_scheduled", "email", "en", 1, "s", expression), SAMPLE_CONTEXT["meeting_scheduled"])


# =============================================================================================
# 3. Rendering
# =============================================================================================
def test_render_fills_in_the_values_and_tidies_the_text():
    t = checked_template("meeting_scheduled", "email", "en", "Your {{ meeting_kind }}",
                         "Dear {{ recipient_name }},\n\n{% if other_party_name is defined %}\n"
                         "With {{ other_party_name }}.\n{% endif %}\n\n\nAt {{ venue_name }}.   \n")
    values = dict(recipient_name="Sam", meeting_kind="restorative meeting", venue_name="Penrith Library")
    assert render(t, values) == Rendered("Your restorative meeting", "Dear Sam,\n\nAt Penrith Library.")
    assert render(t, dict(values, other_party_name="Jordan")) == Rendered(
        "Your restorative meeting", "Dear Sam,\n\nWith Jordan.\n\nAt Penrith Library.")
    # None means not given.
    assert render(t, dict(values, other_party_name=None)).body == "Dear Sam,\n\nAt Penrith Library."


def test_a_missing_value_is_a_context_problem():
    t = checked_template("meeting_scheduled", "email", "en", "s", MEETING_BODY)
    with pytest.raises(TemplateProblem) as e:
        render(t, {"recipient_name": "Sam", "meeting_kind": "visit"})
    assert e.value.problems == [("context", "body: a value is missing: 'venue_name' is undefined")]


def test_values_of_other_message_types_never_reach_the_template():
    t = Template("meeting_scheduled", "email", "en", 1, "s", "{{ reason }}")
    with pytest.raises(TemplateProblem):
        render(t, {"reason": "secret"})


@pytest.mark.parametrize("value, rule", [
    (object(), "recipient_name must be text, a number or true/false, not object"),
    (["a"], "recipient_name must be text, a number or true/false, not list"),
    ({"a": 1}, "recipient_name must be text, a number or true/false, not dict"),
    ("Sam\x00", "recipient_name must not contain NUL characters"),
])
def test_only_plain_values_enter_the_sandbox(value, rule):
    t = checked_template("meeting_scheduled", "email", "en", "s", MEETING_BODY)
    with pytest.raises(TemplateProblem) as e:
        render(t, dict(SAMPLE_CONTEXT["meeting_scheduled"], recipient_name=value))
    assert e.value.problems == [("context", rule)]


def test_a_subject_is_always_one_line_so_no_header_can_be_injected():
    t = checked_template("meeting_scheduled", "email", "en", "Hello {{ recipient_name }}", MEETING_BODY)
    out = render(t, dict(SAMPLE_CONTEXT["meeting_scheduled"], recipient_name="Sam\r\nBcc: all@example.org\n"))
    assert out.subject == "Hello Sam Bcc: all@example.org"


def test_a_rendered_text_message_longer_than_four_parts_is_refused():
    t = checked_template("meeting_scheduled", "sms", "en", "", "Hi {{ recipient_name }}")
    assert render(t, dict(SAMPLE_CONTEXT["meeting_scheduled"], recipient_name="a" * 609)).body == "Hi " + "a" * 609
    with pytest.raises(TemplateProblem) as e:
        render(t, dict(SAMPLE_CONTEXT["meeting_scheduled"], recipient_name="a" * 610))
    assert e.value.problems == [("body", "the text message would need 5 parts; at most 4")]


def test_a_template_rendering_to_nothing_is_refused():
    t = Template("meeting_scheduled", "email", "en", 1, "s", "{% if other_party_name is defined %}x{% endif %}")
    with pytest.raises(TemplateProblem):
        render(t, SAMPLE_CONTEXT["meeting_scheduled"] | {"other_party_name": None})


ALPHABET = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="{}%#")


@FEWER
@given(st.text(ALPHABET, min_size=1, max_size=300).filter(str.strip))
def test_plain_text_renders_as_itself(text):
    t = checked_template("meeting_scheduled", "letter", "en", "", text)
    expected = "\n".join(line.rstrip() for line in text.split("\n")).strip()
    assert render(t, SAMPLE_CONTEXT["meeting_scheduled"]).body == expected


@FEWER
@given(st.sampled_from(MESSAGE_TYPES).flatmap(
    lambda mt: st.tuples(st.just(mt), st.lists(st.sampled_from(sorted(CONTEXT_FIELDS[mt] - OPTIONAL_FIELDS)),
                                               min_size=1, max_size=6))),
       st.text(st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=20))
def test_any_values_of_a_message_type_render_as_given(case, value):
    message_type, names = case
    body = " / ".join("{{ %s }}" % n for n in names)
    channel = TEMPLATE_CHANNELS[message_type][-1]
    t = checked_template(message_type, channel, "cy", "" if channel == "sms" else "s", body)
    context = {n: value for n in CONTEXT_FIELDS[message_type]}
    assert render(t, context).body == " / ".join(value for _ in names)


# =============================================================================================
# 4. Preview, sample values, checked templates
# =============================================================================================
def test_preview_renders_with_sample_values_in_the_templates_language():
    en = checked_template("meeting_reminder", "email", "en", "{{ meeting_kind }}", "{{ starts_at_local }}")
    cy = checked_template("meeting_reminder", "email", "cy", "{{ meeting_kind }}", "{{ starts_at_local }}")
    assert preview(en) == Rendered("restorative meeting", "Tuesday 16 June 2026 at 10:00")
    assert preview(cy, "meeting_reminder") == Rendered("cyfarfod adferol", "Dydd Mawrth 16 Mehefin 2026 am 10:00")
    with pytest.raises(TemplateProblem):
        preview(en, "meeting_cancelled")


def test_sample_values_cover_every_field_of_every_message_type():
    for message_type, fields in CONTEXT_FIELDS.items():
        for language in ("en", "cy"):
            assert set(sample_context(message_type, language)) == set(fields)


def test_checked_template_builds_a_template_or_names_every_problem():
    t = checked_template("case_rejected", "email", "cy", "Atgyfeiriad {{ agency_reference }}", "{{ reason }}", 3)
    assert t == Template("case_rejected", "email", "cy", 3, "Atgyfeiriad {{ agency_reference }}", "{{ reason }}")
    assert t.key == ("case_rejected", "email", "cy")
    with pytest.raises(TemplateProblem) as e:
        checked_template("case_rejected", "email", "cy", "", "{{ venue_name }}", 0)
    assert e.value.problems == [("subject", "is required for email"),
                                ("body", "line 1: 'venue_name' is not a value of case_rejected messages"),
                                ("version", "must be a whole number from 1")]
    assert "invalid template: subject: is required for email" in str(e.value)


# =============================================================================================
# 5. Text message parts and dates as people read them
# =============================================================================================
@pytest.mark.parametrize("text, parts", [
    ("", 1), ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3), ("a" * 612, 4), ("a" * 613, 5),
    ("€" * 80, 1), ("€" * 81, 2),                  # the extension set costs two
    ("é" * 160, 1),                                # in the basic set
    ("ŵ" * 70, 1), ("ŵ" * 71, 2), ("ŵ" * 134, 2), ("ŵ" * 135, 3), ("a" * 200 + "â", 3),   # UCS-2
    ("😀" * 35, 1), ("😀" * 36, 2),                # two UTF-16 units each
    ("it’s", 1), ("’" + "a" * 70, 2),              # a curly apostrophe is not GSM
])
def test_sms_parts(text, parts):
    assert sms_parts(text) == parts


@pytest.mark.parametrize("at, language, text", [
    (utc(2026, 6, 16, 9, 0), "en", "Tuesday 16 June 2026 at 10:00"),
    (utc(2026, 6, 16, 9, 0), "cy", "Dydd Mawrth 16 Mehefin 2026 am 10:00"),
    (utc(2026, 1, 5, 9, 30), "en", "Monday 5 January 2026 at 09:30"),      # GMT
    (utc(2026, 1, 5, 9, 30), "cy", "Dydd Llun 5 Ionawr 2026 am 09:30"),
    (utc(2026, 3, 28, 23, 30), "en", "Saturday 28 March 2026 at 23:30"),
    (utc(2026, 3, 29, 23, 30), "en", "Monday 30 March 2026 at 00:30"),
    (london(2026, 10, 25, 1, 30, fold=1), "cy", "Dydd Sul 25 Hydref 2026 am 01:30"),
    (utc(2026, 12, 31, 23, 59), "cy", "Dydd Iau 31 Rhagfyr 2026 am 23:59"),
])
def test_local_text(at, language, text):
    assert local_text(at, language) == text


def test_local_text_needs_a_time_zone_and_date_text_reads_in_both_languages():
    from datetime import date, datetime
    with pytest.raises(ValueError):
        local_text(datetime(2026, 6, 16, 10, 0), "en")
    assert date_text(date(2026, 2, 1), "en") == "1 February 2026"
    assert date_text(date(2026, 2, 1), "cy") == "1 Chwefror 2026"
