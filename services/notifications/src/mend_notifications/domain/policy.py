"""Who may be sent what, by which channel and when: consent and contact preferences, quiet
hours, confidentiality between the parties, reminders, one message per (event, recipient,
channel), delivery status and retries.

The confidentiality rule is enforced twice. released_context decides what a message may be
built from (the recipient's own details and what a coordinator released to them), and
leaked_details reads the finished text for any other party's details, so a template or a value
that slipped through is caught before anything is sent.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Collection, Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from .vocabulary import (CHANNELS, LANGUAGES, PARTICIPANT_CHANNELS, PARTY_DETAIL_FIELDS, STATUS_TRANSITIONS,
                         STATUSES, NotificationProblem)

LOCAL_TZ = "Europe/London"


class PreferencesProblem(NotificationProblem):
    what = "contact preferences"


# -- contact preferences ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ContactPreferences:
    channels: frozenset[str]          # the channels the person consented to be contacted by
    language: str = "en"
    quiet_start: time | None = None   # local time ("HH:MM" text is read too); both or neither;
                                      # the window may wrap midnight
    quiet_end: time | None = None
    email: str = ""
    phone: str = ""
    address: str = ""                 # lines separated by newlines
    postcode: str = ""

    def __post_init__(self):
        object.__setattr__(self, "channels", frozenset(self.channels))
        problems = []
        # Stored as "HH:MM" text ("" for none): read it here so every caller gets times.
        for name in ("quiet_start", "quiet_end"):
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    object.__setattr__(self, name, time.fromisoformat(value) if value.strip() else None)
                except ValueError:
                    problems.append((name, f"{value!r} is not a time of day (HH:MM)"))
        unknown = sorted(c for c in self.channels if c not in PARTICIPANT_CHANNELS)
        if unknown:
            problems.append(("channels", f"{', '.join(map(repr, unknown))}: a person can consent only to "
                                         f"{', '.join(PARTICIPANT_CHANNELS)}"))
        if self.language not in LANGUAGES:
            problems.append(("language", f"{self.language!r} is not one of {', '.join(LANGUAGES)}"))
        times_ok = True
        for name in ("quiet_start", "quiet_end"):
            value = getattr(self, name)
            if isinstance(value, str):
                times_ok = False        # text that did not read as a time: reported above
            elif value is not None and (not isinstance(value, time) or value.tzinfo is not None):
                problems.append((name, "must be a local time of day without a time zone"))
                times_ok = False
        if not times_ok:
            pass
        elif (self.quiet_start is None) != (self.quiet_end is None):
            problems.append(("quiet_end" if self.quiet_end is None else "quiet_start",
                             "quiet hours need both a start and an end"))
        elif self.quiet_start is not None and self.quiet_start == self.quiet_end:
            problems.append(("quiet_end", "quiet hours cannot start and end at the same time"))
        for name in ("email", "phone", "address", "postcode"):
            if not isinstance(getattr(self, name), str):
                problems.append((name, "must be text"))
        if problems:
            raise PreferencesProblem(problems)


_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")


def _has_phone(phone: str) -> bool:
    digits = re.sub(r"\D", "", phone)
    return bool(re.fullmatch(r"\+?[\d\s()\-]+", phone.strip())) and 10 <= len(digits) <= 15


# What each channel needs to reach someone.
_REACHABLE = {
    "email": lambda p: bool(_EMAIL.fullmatch(p.email.strip())),
    "sms": lambda p: _has_phone(p.phone),
    "letter": lambda p: bool(p.address.strip()) and bool(p.postcode.strip()),
}


def channels_for(prefs: ContactPreferences) -> list[str]:
    """The channels this person consented to and can be reached by, in PARTICIPANT_CHANNELS
    order. Empty: nothing may be sent to them."""
    return [c for c in PARTICIPANT_CHANNELS if c in prefs.channels and _REACHABLE[c](prefs)]


# -- quiet hours ---------------------------------------------------------------------------------
def _aware(at: datetime, name: str) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be a datetime with a time zone")
    return at


def _in_window(wall: time, start: time, end: time) -> bool:
    """Is a local clock time inside [start, end)? A window whose start is later than its end
    wraps midnight (21:00-08:00)."""
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def _wall(at: datetime, zone: ZoneInfo) -> time:
    return at.astimezone(zone).time().replace(tzinfo=None, fold=0)


def in_quiet_hours(at: datetime, prefs: ContactPreferences, tz: str = LOCAL_TZ) -> bool:
    """Is it quiet hours for this person at this moment, by the clock on their wall?"""
    _aware(at, "at")
    if prefs.quiet_start is None or prefs.quiet_end is None:
        return False
    return _in_window(_wall(at, ZoneInfo(tz)), prefs.quiet_start, prefs.quiet_end)


def _transitions(start: datetime, hours: int, zone: ZoneInfo) -> list[datetime]:
    """The moments in (start, start + hours] at which the zone's clocks change (going forward or
    back), to the second: sampled hourly, then found by halving."""
    found = []
    t = start
    for _ in range(hours):
        nxt = t + timedelta(hours=1)
        if t.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            lo, hi = t, nxt          # offset(lo) is the old one, offset(hi) the new
            while hi - lo > timedelta(seconds=1):
                mid = (lo + (hi - lo) / 2).replace(microsecond=0)
                if mid <= lo:
                    break
                if mid.astimezone(zone).utcoffset() == hi.astimezone(zone).utcoffset():
                    hi = mid
                else:
                    lo = mid
            found.append(hi)
        t = nxt
    return found


def next_send_time(now_utc: datetime, prefs: ContactPreferences, channel: str | None = None,
                   tz: str = LOCAL_TZ) -> datetime:
    """When a message to this person may go: now, unless it is their quiet hours, then the
    moment those end. A letter is never held (it is posted, not read at once); a channel of
    None is treated like email and sms. The answer is in UTC.

    Quiet hours are read off the wall clock, which runs on smoothly except when the clocks
    change. So the quiet period ends either when the wall clock reaches quiet_end (which
    happens twice on the night the clocks go back) or at a clock change that lands outside
    the window (the clocks going forward past quiet_end, or back before quiet_start): the
    first of those still to come."""
    now = _aware(now_utc, "now_utc").astimezone(timezone.utc)
    if channel is not None and channel not in CHANNELS:
        # Also catches a time zone passed where the channel goes.
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    if channel == "letter" or not in_quiet_hours(now, prefs, tz):
        return now
    zone = ZoneInfo(tz)
    today = now.astimezone(zone).date()
    candidates = []
    for days in (0, 1, 2):     # the window is under a day long but may wrap midnight
        naive = datetime.combine(today + timedelta(days=days), prefs.quiet_end)
        for fold in (0, 1):
            at = naive.replace(tzinfo=zone, fold=fold).astimezone(timezone.utc)
            # Skip a wall time the clocks jump over (the jump itself is a candidate below).
            if at.astimezone(zone).replace(tzinfo=None) == naive and at > now:
                candidates.append(at)
    candidates += [t for t in _transitions(now, 50, zone) if not in_quiet_hours(t, prefs, tz)]
    return min(candidates)


# -- confidentiality between the parties -------------------------------------------------------------
Release = tuple[str, str, str]     # (about participant, to participant, field)


def released_context(recipient_participant_id: str, parties: Mapping[str, Mapping[str, object]],
                     releases: Collection[Release]) -> dict[str, dict[str, object]]:
    """What a message to this participant may be built from: all of their own details, and of
    every other party only the fields a coordinator released to them. A party with nothing
    released does not appear at all."""
    released = set(releases)
    out: dict[str, dict[str, object]] = {}
    for pid, fields in parties.items():
        if pid == recipient_participant_id:
            out[pid] = dict(fields)
            continue
        shown = {f: v for f, v in fields.items() if (pid, recipient_participant_id, f) in released}
        if shown:
            out[pid] = shown
    return out


def other_party_names(recipient_participant_id: str, parties: Mapping[str, Mapping[str, object]],
                      releases: Collection[Release]) -> list[str]:
    """The names of the other parties as far as they were released to this recipient (given
    name, family name or both), for a template's other_party_name; in participant id order."""
    visible = released_context(recipient_participant_id, parties, releases)
    names = []
    for pid in sorted(visible):
        if pid == recipient_participant_id:
            continue
        parts = [str(visible[pid][f]).strip() for f in ("given_name", "family_name") if visible[pid].get(f)]
        if any(parts):
            names.append(" ".join(p for p in parts if p))
    return names


MIN_DETAIL_CHARS = 3       # shorter values ("Al", "Jo") match too much ordinary text to test
MIN_PHONE_DIGITS = 7


def _fold(text: str) -> str:
    """For comparing: no accents (Siân = Sian), no case, straight quotes, one kind of space."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").casefold().split())


def _words_pattern(value: str) -> re.Pattern | None:
    """A value's words in order, any spacing or commas between them, as whole words."""
    words = re.findall(r"[\w'@.+-]+", _fold(value))
    if not words:
        return None
    return re.compile(r"(?<![\w])" + r"[\s,]+".join(re.escape(w) for w in words) + r"(?![\w])")


def _phone_patterns(value: str) -> list[re.Pattern]:
    digits = re.sub(r"\D", "", value)
    if len(digits) < MIN_PHONE_DIGITS:
        return []
    forms = {digits}
    if digits.startswith("44"):
        forms.add("0" + digits[2:])
    elif digits.startswith("0"):
        forms.add("44" + digits[1:])
    return [re.compile(r"(?<!\d)" + r"[\s\-().]*".join(form) + r"(?!\d)") for form in forms]


def _postcode_pattern(value: str) -> re.Pattern | None:
    chars = re.sub(r"\s", "", _fold(value))
    if not chars:
        return None
    return re.compile(r"(?<![a-z0-9])" + r"\s*".join(re.escape(c) for c in chars) + r"(?![a-z0-9])")


def _address_lines(address: str) -> list[str]:
    """The lines of an address that identify a home: the first line and any with a number in it
    (flat, house number, street). Town and county lines are shared by thousands of people and
    appear in venue addresses, so they are not tested."""
    lines = [line.strip() for line in re.split(r"[\n,]", address) if line.strip()]
    chosen = [line for i, line in enumerate(lines) if i == 0 or re.search(r"\d", line)]
    return [line for line in chosen if len(line) >= MIN_DETAIL_CHARS]


def _patterns(field: str, value: object) -> list[re.Pattern]:
    if not isinstance(value, str) or len(value.strip()) < MIN_DETAIL_CHARS:
        return []
    if field == "phone":
        return _phone_patterns(value)
    if field == "postcode":
        return [p for p in (_postcode_pattern(value),) if p]
    if field == "address":
        return [p for p in (_words_pattern(line) for line in _address_lines(value)) if p]
    return [p for p in (_words_pattern(value),) if p]      # names, email


def _allowed_spans(text: str, values: Iterable[tuple[str, object]]) -> list[tuple[int, int]]:
    """Where in the text the recipient's own and released details appear."""
    return [m.span() for field, value in values for p in _patterns(field, value) for m in p.finditer(text)]


def _covered(span: tuple[int, int], allowed: list[tuple[int, int]]) -> bool:
    return any(start <= span[0] and span[1] <= end for start, end in allowed)


def leaked_details(text: str, recipient_participant_id: str, parties: Mapping[str, Mapping[str, object]],
                   releases: Collection[Release]) -> list[str]:
    """Every detail of another party that appears in a finished message without having been
    released to its recipient, as "participant_id.field" (never the value itself, so the answer
    can be logged). Anything here means the message must not be sent.

    Names are matched as whole words, ignoring case and accents; phone numbers by their digits
    (07700 900123 = +44 7700 900123); postcodes ignoring spaces; email addresses whole;
    addresses by their identifying lines. An occurrence inside something the recipient may see
    (their own details, released ones) does not count: a shared family name, or a street named
    like the other party, is not a leak; but a released family name does not excuse the unreleased
    address it is part of."""
    visible = released_context(recipient_participant_id, parties, releases)
    haystack = _fold(text)
    allowed = _allowed_spans(haystack, ((f, v) for fields in visible.values() for f, v in fields.items()
                                        if f in PARTY_DETAIL_FIELDS))
    released = set(releases)
    found = []
    for pid in sorted(parties):
        if pid == recipient_participant_id:
            continue
        for field in PARTY_DETAIL_FIELDS:
            if (pid, recipient_participant_id, field) in released:
                continue
            if any(not _covered(m.span(), allowed)
                   for p in _patterns(field, parties[pid].get(field)) for m in p.finditer(haystack)):
                found.append(f"{pid}.{field}")
    return found


# -- reminders -----------------------------------------------------------------------------------
DEFAULT_REMINDER_HOURS = (48, 24)


def reminder_due(starts_at: datetime, now: datetime, offsets_hours: Sequence[int], *,
                 scheduled_at: datetime | None = None) -> list[int]:
    """The reminder offsets (hours before the start) whose moment has come while the meeting
    has not yet started, largest first. With scheduled_at, a reminder whose moment had already
    passed when the meeting was arranged is left out: the message arranging it has just gone.
    The caller sends each offset once (its dedupe key names the offset and the meeting's
    sequence, so a rescheduled meeting is reminded afresh)."""
    _aware(starts_at, "starts_at")
    _aware(now, "now")
    if scheduled_at is not None:
        _aware(scheduled_at, "scheduled_at")
    due = set()
    for hours in offsets_hours:
        if not isinstance(hours, int) or isinstance(hours, bool) or hours <= 0:
            raise ValueError(f"a reminder offset must be a whole number of hours above 0, not {hours!r}")
        moment = starts_at - timedelta(hours=hours)
        if moment <= now < starts_at and (scheduled_at is None or scheduled_at <= moment):
            due.add(hours)
    return sorted(due, reverse=True)


# -- one message per (event, recipient, channel) ---------------------------------------------------------
def dedupe_key(event_id: str, recipient_kind: str, recipient_id: str, channel: str) -> str:
    """The key that makes a redelivered event, or a second sweep, send nothing new."""
    parts = (event_id, recipient_kind, recipient_id, channel)
    if not all(isinstance(p, str) and p.strip() and "|" not in p for p in parts):
        raise ValueError("event, recipient kind, recipient and channel must each be text without '|'")
    return "|".join(parts)


def reminder_event_id(meeting_id: str, sequence: int, hours: int) -> str:
    """The 'event' a reminder answers to: one per meeting version and offset."""
    return f"meeting-reminder:{meeting_id}:{sequence}:{hours}h"


# -- delivery status and retries ---------------------------------------------------------------
def status_change_allowed(current: str, new: str) -> bool:
    """May a message's delivery status move from current to new (vocabulary.STATUS_TRANSITIONS)?"""
    if current not in STATUSES or new not in STATUSES:
        raise ValueError(f"delivery statuses are {', '.join(STATUSES)}")
    return new in STATUS_TRANSITIONS[current]


# After attempt n fails, wait RETRY_DELAYS[n-1] (the last one from then on). A provider that is
# down for a while sees a handful of tries, and a message is given up after MAX_ATTEMPTS (about
# three and three-quarter hours of trying): a reminder later than that is no use.
RETRY_DELAYS = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(minutes=30),
                timedelta(hours=1))
MAX_ATTEMPTS = 8
RETRY_SPREAD = 0.2                   # up to 20% later, so a backlog does not retry in one burst
MAX_PROVIDER_WAIT = timedelta(hours=6)


def retry_delay(attempt: int, *, spread_key: str | None = None,
                retry_after: timedelta | float | None = None) -> timedelta:
    """How long to wait after failed attempt number `attempt` (1 for the first). spread_key
    (the message id) adds a fixed share of up to RETRY_SPREAD, the same every time for that
    message, so delays still grow with each attempt. A provider's Retry-After is honoured up to
    MAX_PROVIDER_WAIT."""
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise ValueError("attempt counts from 1")
    delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]
    if spread_key:
        share = int.from_bytes(hashlib.sha256(spread_key.encode()).digest()[:4], "big") / 2 ** 32
        delay += delay * (RETRY_SPREAD * share)
    if retry_after is not None:
        asked = retry_after if isinstance(retry_after, timedelta) else timedelta(seconds=float(retry_after))
        delay = max(delay, min(asked, MAX_PROVIDER_WAIT))
    return delay


def gives_up(attempts: int) -> bool:
    """After this many failed attempts, is the message failed for good?"""
    return attempts >= MAX_ATTEMPTS
