"""Message templates: one per message type, channel and language, versioned, written by staff in
a deliberately small part of Jinja2 and rendered in Jinja2's immutable sandbox.

A template can print the values its message type is given (vocabulary.CONTEXT_FIELDS), choose
between texts with {% if %}, and pass values through a few plain filters. Nothing else: no
attribute or item access, no calls, loops, macros, includes or assignments, no * ** / // %
operators. Templates are written by administrators but a message goes to a victim, so a
template must not be able to reach anything but its own values (server-side template injection)
nor to make the worker spin or fill memory. Validation refuses the rest with the line it is on,
and rendering validates again (the template may come from a database row nobody checked), runs
in the sandbox anyway, and sees only its message type's values.

Text is plain (no HTML, no autoescaping). A block tag ({% if %}, {% endif %}) on a line of its
own leaves no empty line behind (trim_blocks, lstrip_blocks); runs of blank lines left by
missing optional parts are closed up to one.
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .vocabulary import (CHANNELS, CONTEXT_FIELDS, LANGUAGES, MESSAGE_TYPES, OPTIONAL_FIELDS, TEMPLATE_CHANNELS,
                         NotificationProblem)

MAX_BODY_CHARS = 10_000
MAX_SUBJECT_CHARS = 200
MAX_SMS_BODY_CHARS = 612          # the template's text: 4 concatenated parts of 153 GSM characters
MAX_SMS_PARTS = 4                 # and the rendered text must fit in 4 parts however it is encoded
# Subjects: email needs one; a letter may have one (printed as its heading); a text message has none.
SUBJECT_RULES = {"email": "required", "letter": "optional", "sms": "none"}


@dataclass(frozen=True)
class Template:
    message_type: str
    channel: str
    language: str
    version: int
    subject: str
    body: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.message_type, self.channel, self.language)


@dataclass(frozen=True)
class Rendered:
    subject: str      # one line ("" for a text message)
    body: str


class TemplateProblem(NotificationProblem):
    """A template that cannot be saved or rendered; .problems lists (field, rule)."""

    what = "template"


# -- the sandbox ---------------------------------------------------------------------------------
ALLOWED_FILTERS = frozenset({
    "abs", "capitalize", "d", "default", "first", "int", "join", "last", "length", "lower", "round", "string",
    "title", "trim", "truncate", "upper", "wordwrap",
})
# Not replace, center, indent, format, batch...: each can multiply the text it is given.
ALLOWED_TESTS = frozenset({
    "defined", "undefined", "none", "true", "false", "number", "string", "even", "odd", "eq", "ne", "lt", "le",
    "gt", "ge", "==", "!=", "<", "<=", ">", ">=", "in",
})
ALLOWED_NODES = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Const, nodes.Name, nodes.If, nodes.CondExpr,
    nodes.Concat, nodes.Add, nodes.Sub, nodes.Neg, nodes.Pos, nodes.Not, nodes.And, nodes.Or, nodes.Compare,
    nodes.Operand, nodes.Filter, nodes.Test, nodes.Keyword, nodes.List, nodes.Tuple,
)
# How a refused construct is named to the person writing the template.
REFUSED_NODE_NAMES = {
    nodes.Getattr: "attribute access ('.')", nodes.Getitem: "item access ('[...]')", nodes.Slice: "slices",
    nodes.Call: "calls ('(...)')", nodes.For: "loops ({% for %})", nodes.Macro: "macros", nodes.CallBlock: "{% call %}",
    nodes.Include: "{% include %}", nodes.Extends: "{% extends %}", nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}", nodes.Assign: "{% set %}", nodes.AssignBlock: "{% set %}",
    nodes.Block: "{% block %}", nodes.FilterBlock: "{% filter %}", nodes.With: "{% with %}",
    nodes.Mul: "the * operator", nodes.Pow: "the ** operator", nodes.Div: "the / operator",
    nodes.FloorDiv: "the // operator", nodes.Mod: "the % operator", nodes.Dict: "dictionaries",
}


class _MessageEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, narrowed further: no globals (cycler, lipsum, range...), only the allowed
    filters and tests, and no calls or multiplying operators even if a template got past
    validation."""

    intercepted_binops = frozenset({"*", "**", "/", "//", "%"})   # also stops constant folding of them

    def call_binop(self, context, operator, left, right):
        raise SecurityError(f"the {operator} operator is not allowed in message templates")

    def call(__self, __context, __obj, *args, **kwargs):   # noqa: N805 (jinja2's own signature)
        raise SecurityError("calls are not allowed in message templates")


def _environment() -> _MessageEnvironment:
    env = _MessageEnvironment(undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=False)
    env.globals.clear()
    env.filters = {name: f for name, f in env.filters.items() if name in ALLOWED_FILTERS}
    env.tests = {name: t for name, t in env.tests.items() if name in ALLOWED_TESTS}
    return env


_ENV = _environment()


# -- validation ----------------------------------------------------------------------------------
def _choice_problem(field: str, value: Any, allowed: tuple[str, ...]) -> list[tuple[str, str]]:
    if value in allowed:
        return []
    return [(field, f"{value!r} is not one of {', '.join(allowed)}")]


def _text_problems(field: str, text: Any, limit: int) -> list[tuple[str, str]]:
    if not isinstance(text, str):
        return [(field, "must be text")]
    problems = []
    if len(text) > limit:
        problems.append((field, f"must be at most {limit} characters (it has {len(text)})"))
    if "\x00" in text:
        problems.append((field, "must not contain NUL characters"))
    elif any(ord(c) < 32 and c not in "\t\n\r" or 0x7F <= ord(c) < 0xA0 for c in text):
        problems.append((field, "must not contain control characters"))
    return problems


def _construct_problems(field: str, ast: nodes.Template, message_type: str) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    allowed_names = CONTEXT_FIELDS[message_type]

    def add(rule: str) -> None:
        if (field, rule) not in problems:
            problems.append((field, rule))

    for node in ast.find_all(nodes.Node):
        line = getattr(node, "lineno", None) or 1
        if not isinstance(node, ALLOWED_NODES):
            name = REFUSED_NODE_NAMES.get(type(node), type(node).__name__)
            add(f"line {line}: {name} is not allowed in a message template")
        elif isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
            add(f"line {line}: the filter {node.name!r} is not allowed (allowed: {', '.join(sorted(ALLOWED_FILTERS))})")
        elif isinstance(node, nodes.Test) and node.name not in ALLOWED_TESTS:
            add(f"line {line}: the test {node.name!r} is not allowed")
        elif isinstance(node, nodes.Name) and node.name not in allowed_names:
            # Catches what meta.find_undeclared_variables does not report (self, loop...).
            add(f"line {line}: {node.name!r} is not a value of {message_type} messages")
    if problems:
        return problems
    # The documented way to list the names a template reads. The Name nodes above already cover
    # it; this stays as a second, independent check. (It compiles the template, so it runs only
    # once the filters are known to exist.)
    try:
        undeclared = meta.find_undeclared_variables(ast)
    except TemplateError as e:
        return [(field, f"line {getattr(e, 'lineno', None) or 1}: {e}")]
    for name in sorted(undeclared - allowed_names):
        add(f"{name!r} is not a value of {message_type} messages")
    return problems


@functools.lru_cache(maxsize=1024)
def _compiled(message_type: str, field: str, source: str):
    """(problems, compiled template or None) for one field's source."""
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as e:
        return ((field, f"syntax error on line {e.lineno}: {e.message}"),), None
    problems = _construct_problems(field, ast, message_type)
    if problems:
        return tuple(problems), None
    try:
        return (), _ENV.from_string(source)
    except TemplateError as e:     # e.g. an unknown filter, found at compile time
        return ((field, f"line {getattr(e, 'lineno', None) or 1}: {e}"),), None


@functools.lru_cache(maxsize=1024)
def _validate(message_type: str, channel: str, language: str, subject: str, body: str) -> tuple[tuple[str, str], ...]:
    problems = (_choice_problem("message_type", message_type, MESSAGE_TYPES)
                + _choice_problem("channel", channel, CHANNELS)
                + _choice_problem("language", language, LANGUAGES))
    if problems:
        return tuple(problems)
    if channel not in TEMPLATE_CHANNELS[message_type]:
        if channel == "webhook":
            return (("channel", "a webhook carries the event as JSON and has no text template"),)
        allowed = ", ".join(TEMPLATE_CHANNELS[message_type])
        return (("channel", f"{message_type} messages are not sent by {channel} (only {allowed})"),)
    body_limit = MAX_SMS_BODY_CHARS if channel == "sms" else MAX_BODY_CHARS
    problems = _text_problems("subject", subject, MAX_SUBJECT_CHARS) + _text_problems("body", body, body_limit)
    if problems:
        return tuple(problems)
    rule = SUBJECT_RULES[channel]
    if rule == "none" and subject.strip():
        problems.append(("subject", "a text message has no subject"))
    elif rule == "required" and not subject.strip():
        problems.append(("subject", f"is required for {channel}"))
    if "\n" in subject or "\r" in subject:
        problems.append(("subject", "must be one line"))
    if not body.strip():
        problems.append(("body", "is required"))
    for field, source in (("subject", subject), ("body", body)):
        problems.extend(_compiled(message_type, field, source)[0])
    if problems:
        return tuple(problems)
    # Try it: with every value, and with the optional ones missing (a template must test those
    # with "is defined"), so a template that cannot render is refused now, not at 3 a.m.
    sample = sample_context(message_type, language)
    for context in (sample, {k: v for k, v in sample.items() if k not in OPTIONAL_FIELDS}):
        try:
            _render(message_type, channel, subject, body, context)
        except TemplateProblem as e:
            return tuple(_blame_template(f, rule) for f, rule in e.problems)
    return ()


def _blame_template(field: str, rule: str) -> tuple[str, str]:
    """A sample-value rendering failure is the template's fault: name its field."""
    where, _, rest = rule.partition(": ")
    if field == "context" and where in ("subject", "body"):
        field, rule = where, rest
    return field, f"with sample values: {rule}"


def validate_template(message_type: str, channel: str, language: str, subject: str, body: str) -> list[tuple[str, str]]:
    """Everything wrong with a template as (field, rule); empty when it may be saved."""
    args = (message_type, channel, language, subject, body)
    if not all(isinstance(a, str) for a in args):
        return [(name, "must be text") for name, a in zip(("message_type", "channel", "language", "subject", "body"),
                                                             args) if not isinstance(a, str)]
    return list(_validate(*args))


def checked_template(message_type: str, channel: str, language: str, subject: str, body: str,
                     version: int = 1) -> Template:
    """A Template, or TemplateProblem naming everything wrong with it."""
    problems = validate_template(message_type, channel, language, subject, body)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append(("version", "must be a whole number from 1"))
    if problems:
        raise TemplateProblem(problems)
    return Template(message_type, channel, language, version, subject, body)


# -- rendering -----------------------------------------------------------------------------------
_BLANK_LINES = re.compile(r"\n{3,}")


def _clean_context(message_type: str, context: Mapping) -> dict[str, Any]:
    """Only this message type's values, and only plain values: an object with methods never
    enters the sandbox. None means "not given"."""
    values, problems = {}, []
    for name in sorted(CONTEXT_FIELDS[message_type]):
        if name not in context or context[name] is None:
            continue
        value = context[name]
        if isinstance(value, str):
            if "\x00" in value:
                problems.append(("context", f"{name} must not contain NUL characters"))
        elif not isinstance(value, (bool, int, float)):
            problems.append(("context", f"{name} must be text, a number or true/false, not {type(value).__name__}"))
        values[name] = value
    if problems:
        raise TemplateProblem(problems)
    return values


def _render_one(message_type: str, field: str, source: str, values: dict) -> str:
    problems, compiled = _compiled(message_type, field, source)
    if problems:
        raise TemplateProblem(problems)
    try:
        return compiled.render(values)
    except UndefinedError as e:
        raise TemplateProblem([("context", f"{field}: a value is missing: {e.message}")]) from None
    except SecurityError as e:
        raise TemplateProblem([("context", f"{field}: refused by the sandbox: {e}")]) from None
    except Exception as e:   # a filter given the wrong kind of value, say: a clear problem, not a crash
        raise TemplateProblem([(field, f"cannot be rendered: {type(e).__name__}: {e}")]) from None


def _render(message_type: str, channel: str, subject: str, body: str, context: Mapping) -> Rendered:
    values = _clean_context(message_type, context)
    # A subject is one line whatever a value holds: no header injection through a name.
    subject_text = " ".join(_render_one(message_type, "subject", subject, values).split())
    body_text = _render_one(message_type, "body", body, values).replace("\r\n", "\n").replace("\r", "\n")
    body_text = _BLANK_LINES.sub("\n\n", "\n".join(line.rstrip() for line in body_text.split("\n"))).strip()
    if not body_text:
        raise TemplateProblem([("body", "renders as empty text")])
    if channel == "sms":
        parts = sms_parts(body_text)
        if parts > MAX_SMS_PARTS:
            raise TemplateProblem([("body", f"the text message would need {parts} parts; at most {MAX_SMS_PARTS}")])
    return Rendered(subject_text, body_text)


def render(template: Template, context: Mapping) -> Rendered:
    """The message a template makes from these values, or TemplateProblem. The template is
    validated first (cached), so one that was never checked still cannot run."""
    problems = validate_template(template.message_type, template.channel, template.language, template.subject,
                                 template.body)
    if problems:
        raise TemplateProblem(problems)
    return _render(template.message_type, template.channel, template.subject, template.body, context)


def preview(template: Template, message_type: str | None = None) -> Rendered:
    """The template rendered with realistic sample values, for the person editing it."""
    message_type = message_type or template.message_type
    if message_type != template.message_type:
        raise TemplateProblem([("message_type", f"the template is for {template.message_type}, not {message_type}")])
    return render(template, sample_context(message_type, template.language))


# -- text messages -------------------------------------------------------------------------------
# GSM 03.38: the basic set costs one of 160 (or 153 when split) characters per part, its
# extension set two; anything else (ŵ, ŷ, â, curly quotes, emoji) sends the whole message as
# UCS-2 at 70 (67 when split) UTF-16 units a part. Welsh with circumflexes is therefore UCS-2.
_GSM_BASIC = frozenset("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                       "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def sms_parts(text: str) -> int:
    """How many parts (segments) a text message of this text takes."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        units = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        single, split = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, split = 70, 67
    return 1 if units <= single else math.ceil(units / split)


# -- dates and times as a recipient reads them -----------------------------------------------------
LOCAL_TZ = "Europe/London"
_DAYS = {"en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
         "cy": ("Dydd Llun", "Dydd Mawrth", "Dydd Mercher", "Dydd Iau", "Dydd Gwener", "Dydd Sadwrn", "Dydd Sul")}
_MONTHS = {"en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                  "November", "December"),
           "cy": ("Ionawr", "Chwefror", "Mawrth", "Ebrill", "Mai", "Mehefin", "Gorffennaf", "Awst", "Medi", "Hydref",
                  "Tachwedd", "Rhagfyr")}
_AT = {"en": "at", "cy": "am"}


def date_text(day: date, language: str) -> str:
    """'16 June 2026' / '16 Mehefin 2026'."""
    return f"{day.day} {_MONTHS[language][day.month - 1]} {day.year}"


def time_text(at: datetime, tz: str = LOCAL_TZ) -> str:
    """Local clock time, 24-hour: '10:00'."""
    return at.astimezone(ZoneInfo(tz)).strftime("%H:%M")


def local_text(at: datetime, language: str, tz: str = LOCAL_TZ) -> str:
    """'Tuesday 16 June 2026 at 10:00' / 'Dydd Mawrth 16 Mehefin 2026 am 10:00', local time."""
    if at.tzinfo is None:
        raise ValueError("the time must carry its time zone")
    local = at.astimezone(ZoneInfo(tz))
    day = _DAYS[language][local.weekday()]
    return f"{day} {date_text(local.date(), language)} {_AT[language]} {time_text(local, tz)}"


# -- sample values, for preview and validation -------------------------------------------------------
_SAMPLE_AT = datetime.fromisoformat("2026-06-16T09:00:00+00:00")      # 10:00 in London
_SAMPLE_VALUES: dict[str, Any] = {
    "recipient_name": "Sam Taylor",
    "service_name": "Cumbria Restorative Justice Service",
    "service_phone": "01768 555 0142",
    "service_email": "rj@cumbria.example.org",
    "agency_name": "Cumbria Constabulary",
    "agency_reference": "CC/2026/004512",
    "status": "accepted",
    "detail": "accepted for restorative justice",
    "updated_on": "12 June 2026",
    "case_reference": "CUM-2026-0142",
    "decided_on": "12 June 2026",
    "reason": "the person responsible does not accept the harm caused",
    "coordinator_name": "Morgan Evans",
    "reply_by": "26 June 2026",
    "meeting_kind": "restorative meeting",
    "starts_at_local": local_text(_SAMPLE_AT, "en"),
    "ends_at_local": "11:30",
    "previous_starts_at_local": "Monday 15 June 2026 at 14:00",
    "venue_name": "Penrith Community Centre",
    "venue_address": "Middlegate, Penrith CA11 7PT",
    "facilitator_names": "Alex Jones and Priya Shah",
    "arrival_note": "Please come to the side entrance on Corney Place at 09:45.",
    "other_party_name": "Jordan",
    "hours_before": 24,
    "county": "Cumbria",
    "item_kind": "apology",
    "due_on": "5 June 2026",
    "days_overdue": 7,
    "clock": "information about restorative justice",
    "started_on": "1 June 2026",
    "met_late": False,
    "level": "high",
    "assessor_name": "Morgan Evans",
    "requested_at_local": local_text(_SAMPLE_AT, "en"),
}
# Values that read differently in Welsh.
_SAMPLE_VALUES_CY: dict[str, Any] = {
    "service_name": "Gwasanaeth Cyfiawnder Adferol Cumbria",
    "status": "wedi'i dderbyn",
    "detail": "wedi'i dderbyn ar gyfer cyfiawnder adferol",
    "updated_on": "12 Mehefin 2026",
    "decided_on": "12 Mehefin 2026",
    "reason": "nid yw'r person cyfrifol yn derbyn y niwed a achoswyd",
    "reply_by": "26 Mehefin 2026",
    "meeting_kind": "cyfarfod adferol",
    "starts_at_local": local_text(_SAMPLE_AT, "cy"),
    "previous_starts_at_local": "Dydd Llun 15 Mehefin 2026 am 14:00",
    "facilitator_names": "Alex Jones a Priya Shah",
    "arrival_note": "Dewch at y drws ochr ar Corney Place am 09:45.",
    "item_kind": "ymddiheuriad",
    "due_on": "5 Mehefin 2026",
    "clock": "gwybodaeth am gyfiawnder adferol",
    "started_on": "1 Mehefin 2026",
    "level": "uchel",
    "requested_at_local": local_text(_SAMPLE_AT, "cy"),
}
SAMPLE_CONTEXT: dict[str, dict[str, Any]] = {
    t: {f: _SAMPLE_VALUES[f] for f in sorted(fields)} for t, fields in CONTEXT_FIELDS.items()
}


def sample_context(message_type: str, language: str = "en") -> dict[str, Any]:
    """SAMPLE_CONTEXT for a message type, with Welsh values for a Welsh template."""
    values = dict(SAMPLE_CONTEXT[message_type])
    if language == "cy":
        values.update((k, v) for k, v in _SAMPLE_VALUES_CY.items() if k in values)
    return values


assert all(set(fields) <= set(_SAMPLE_VALUES) for fields in CONTEXT_FIELDS.values()), "a sample for every value"
