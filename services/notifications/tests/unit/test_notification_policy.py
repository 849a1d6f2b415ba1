"""Consent and contact details, reminders, one message per (event, recipient, channel), delivery
status and retries."""
from __future__ import annotations

from datetime import time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notification_examples import FEWER, PROPERTY, UTC, utc
from mend_notifications.domain.policy import (MAX_ATTEMPTS, RETRY_DELAYS, ContactPreferences, PreferencesProblem,
                                              channels_for, dedupe_key, gives_up, reminder_due, reminder_event_id,
                                              retry_delay, status_change_allowed)
from mend_notifications.domain.vocabulary import FINAL_STATUSES, STATUS_TRANSITIONS, STATUSES

FULL = dict(email="sam@example.org", phone="07700 900123", address="14 Castle Street\nPenrith", postcode="CA11 7PT")


# =============================================================================================
# 1. Channels: consented to, and reachable
# =============================================================================================
@pytest.mark.parametrize("consented, details, channels", [
    ({"email"}, FULL, ["email"]),
    ({"letter", "sms", "email"}, FULL, ["email", "sms", "letter"]),      # always in the same order
    ({"sms", "letter"}, FULL, ["sms", "letter"]),
    (set(), FULL, []),                                                   # details alone are not consent
    ({"email"}, dict(FULL, email=""), []),
    ({"email"}, dict(FULL, email="sam at example.org"), []),
    ({"email"}, dict(FULL, email="sam@localhost"), []),
    ({"email"}, dict(FULL, email=" sam@example.org "), ["email"]),
    ({"sms"}, dict(FULL, phone=""), []),
    ({"sms"}, dict(FULL, phone="123"), []),
    ({"sms"}, dict(FULL, phone="call me"), []),
    ({"sms"}, dict(FULL, phone="+44 (0)7700 900-123"), ["sms"]),
    ({"letter"}, dict(FULL, postcode=""), []),
    ({"letter"}, dict(FULL, address="  "), []),
    ({"email", "sms", "letter"}, dict(email="sam@example.org"), ["email"]),
])
def test_channels_for(consented, details, channels):
    assert channels_for(ContactPreferences(frozenset(consented), **details)) == channels


@PROPERTY
@given(st.frozensets(st.sampled_from(["email", "sms", "letter"])), st.booleans(), st.booleans(), st.booleans())
def test_a_channel_is_only_ever_one_consented_to(consented, has_email, has_phone, has_address):
    details = dict(email=FULL["email"] if has_email else "", phone=FULL["phone"] if has_phone else "",
                   address=FULL["address"] if has_address else "", postcode=FULL["postcode"] if has_address else "")
    chosen = channels_for(ContactPreferences(consented, **details))
    assert set(chosen) <= consented
    assert chosen == [c for c in ("email", "sms", "letter") if c in chosen]
    assert ("email" in chosen) == ("email" in consented and has_email)


@pytest.mark.parametrize("kw, problem", [
    (dict(channels={"webhook"}), ("channels", "'webhook': a person can consent only to email, sms, letter")),
    (dict(channels={"fax", "email"}), ("channels", "'fax': a person can consent only to email, sms, letter")),
    (dict(language="fr"), ("language", "'fr' is not one of en, cy")),
    (dict(quiet_start=time(21)), ("quiet_end", "quiet hours need both a start and an end")),
    (dict(quiet_end=time(8)), ("quiet_start", "quiet hours need both a start and an end")),
    (dict(quiet_start="9pm", quiet_end="08:00"), ("quiet_start", "'9pm' is not a time of day (HH:MM)")),
    (dict(quiet_start=time(21, tzinfo=UTC), quiet_end=time(8)),
     ("quiet_start", "must be a local time of day without a time zone")),
    (dict(quiet_start=2100, quiet_end=time(8)), ("quiet_start", "must be a local time of day without a time zone")),
    (dict(email=None), ("email", "must be text")),
])
def test_contact_preferences_refuse_what_they_cannot_honour(kw, problem):
    kw = {"channels": frozenset({"email"}), **kw}
    with pytest.raises(PreferencesProblem) as e:
        ContactPreferences(**kw)
    assert problem in e.value.problems


def test_every_problem_with_preferences_is_reported_at_once():
    with pytest.raises(PreferencesProblem) as e:
        ContactPreferences(frozenset({"fax"}), language="fr", quiet_start="late", quiet_end="08:00", email=None)
    assert [field for field, _ in e.value.problems] == ["quiet_start", "channels", "language", "email"]


def test_quiet_hours_may_be_given_as_stored_text():
    p = ContactPreferences(frozenset({"sms"}), quiet_start="21:00", quiet_end="08:30")
    assert (p.quiet_start, p.quiet_end) == (time(21, 0), time(8, 30))
    assert ContactPreferences(frozenset({"sms"}), quiet_start="", quiet_end="").quiet_end is None


def test_contact_preferences_take_any_collection_of_channels_and_are_frozen():
    p = ContactPreferences(["sms", "sms", "email"], language="cy")
    assert p.channels == frozenset({"sms", "email"})
    assert p.quiet_start is None
    with pytest.raises(AttributeError):
        p.language = "en"


# =============================================================================================
# 2. Reminders
# =============================================================================================
START = utc(2026, 6, 16, 9, 0)


@pytest.mark.parametrize("hours_before_start, offsets, scheduled_hours_before, due", [
    (50, (48, 24), None, []),
    (48, (48, 24), None, [48]),                 # the moment itself
    (47, (48, 24), None, [48]),
    (24, (48, 24), None, [48, 24]),
    (1, (24, 48), None, [48, 24]),              # largest first, whatever order given
    (0, (48, 24), None, []),                    # started: too late for any
    (-1, (48, 24), None, []),
    (23, (24, 24), None, [24]),
    (23, (48, 24), 30, [24]),                   # arranged 30 h ahead: no 48 h reminder
    (10, (48, 24), 20, []),                     # arranged 20 h ahead: the arranging message will do
    (23, (48, 24), 48, [48, 24]),               # arranged exactly at the 48 h moment
])
def test_reminder_due(hours_before_start, offsets, scheduled_hours_before, due):
    now = START - timedelta(hours=hours_before_start)
    scheduled = None if scheduled_hours_before is None else START - timedelta(hours=scheduled_hours_before)
    assert reminder_due(START, now, offsets, scheduled_at=scheduled) == due


@pytest.mark.parametrize("offsets", [(0,), (-24,), (1.5,), (True,), ("24",)])
def test_reminder_offsets_are_whole_hours_above_zero(offsets):
    with pytest.raises(ValueError):
        reminder_due(START, START - timedelta(hours=30), offsets)


def test_reminder_times_must_be_aware():
    from datetime import datetime
    with pytest.raises(ValueError):
        reminder_due(datetime(2026, 6, 16, 9), START, (24,))


@PROPERTY
@given(st.lists(st.integers(1, 96), max_size=5).flatmap(lambda offsets: st.tuples(
    st.just(offsets),
    # Anywhen in four days either side, or exactly on a reminder's moment, or a second either side of it.
    st.one_of(st.integers(-100 * 3600, 100 * 3600),
              st.tuples(st.sampled_from(offsets or [24]), st.sampled_from([-1, 0, 1])).map(
                  lambda t: t[0] * 3600 + t[1]),
              st.sampled_from([0, 1, -1])))))
def test_a_reminder_is_due_exactly_between_its_moment_and_the_start(case):
    offsets, seconds_before = case
    now = START - timedelta(seconds=seconds_before)
    due = reminder_due(START, now, offsets)
    assert due == sorted(set(due), reverse=True)
    for h in set(offsets):
        assert (h in due) == (START - timedelta(hours=h) <= now < START)


def test_a_rescheduled_meeting_is_reminded_afresh():
    assert reminder_event_id("m-1", 0, 24) != reminder_event_id("m-1", 1, 24)
    assert reminder_event_id("m-1", 1, 24) == "meeting-reminder:m-1:1:24h"


# =============================================================================================
# 3. One message per (event, recipient, channel)
# =============================================================================================
def test_dedupe_key():
    assert dedupe_key("evt-1", "participant", "p-1", "sms") == "evt-1|participant|p-1|sms"
    for bad in [("", "participant", "p-1", "sms"), ("evt|1", "participant", "p-1", "sms"),
                ("evt-1", "participant", None, "sms")]:
        with pytest.raises(ValueError):
            dedupe_key(*bad)


part = st.text(st.characters(blacklist_characters="|", blacklist_categories=("Cs",)), min_size=1,
               max_size=10).filter(str.strip)


@FEWER
@given(st.tuples(part, part, part, part), st.tuples(part, part, part, part))
def test_different_messages_never_share_a_key(a, b):
    assert (dedupe_key(*a) == dedupe_key(*b)) == (a == b)


# =============================================================================================
# 4. Delivery status
# =============================================================================================
@pytest.mark.parametrize("current, new, allowed", [
    ("queued", "sending", True), ("sending", "sent", True), ("sent", "delivered", True), ("sent", "bounced", True),
    ("sent", "failed", True), ("sending", "queued", True),              # a retry
    ("sending", "delivered", True),                                     # a receipt overtaking our own record
    ("queued", "failed", True),                                         # no longer to be sent
    ("queued", "sent", False), ("queued", "delivered", False), ("sent", "queued", False),
    ("delivered", "bounced", False), ("delivered", "sent", False), ("failed", "queued", False),
    ("bounced", "delivered", False), ("sent", "sent", False),
])
def test_status_change_allowed(current, new, allowed):
    assert status_change_allowed(current, new) is allowed


def test_status_words_are_checked():
    with pytest.raises(ValueError):
        status_change_allowed("queued", "lost")


def test_final_statuses_are_final_and_every_status_can_be_reached_from_queued():
    assert all(not STATUS_TRANSITIONS[s] for s in FINAL_STATUSES)
    seen, todo = {"queued"}, ["queued"]
    while todo:
        for nxt in STATUS_TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(STATUSES)


# =============================================================================================
# 5. Retries
# =============================================================================================
@pytest.mark.parametrize("attempt, delay", [
    (1, timedelta(seconds=30)), (2, timedelta(minutes=2)), (3, timedelta(minutes=10)), (4, timedelta(minutes=30)),
    (5, timedelta(hours=1)), (7, timedelta(hours=1)), (100, timedelta(hours=1)),
])
def test_retry_delay_backs_off_to_a_cap(attempt, delay):
    assert retry_delay(attempt) == delay


@pytest.mark.parametrize("attempt", [0, -1, 1.0, True])
def test_attempts_count_from_one(attempt):
    with pytest.raises(ValueError):
        retry_delay(attempt)


def test_a_message_is_given_up_after_max_attempts_within_a_few_hours():
    assert not gives_up(MAX_ATTEMPTS - 1) and gives_up(MAX_ATTEMPTS)
    total = sum((retry_delay(a) for a in range(1, MAX_ATTEMPTS)), timedelta())
    assert timedelta(hours=3) < total < timedelta(hours=5)


def test_a_providers_retry_after_is_honoured_up_to_a_limit():
    assert retry_delay(1, retry_after=120) == timedelta(minutes=2)
    assert retry_delay(5, retry_after=120) == timedelta(hours=1)          # never shorter than our own
    assert retry_delay(1, retry_after=timedelta(days=2)) == timedelta(hours=6)


@PROPERTY
@given(st.text(min_size=1, max_size=20), st.integers(1, 20))
def test_spread_is_fixed_per_message_bounded_and_keeps_delays_growing(key, attempt):
    base = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]
    d = retry_delay(attempt, spread_key=key)
    assert base <= d <= base * 1.2
    assert d == retry_delay(attempt, spread_key=key)
    assert retry_delay(attempt + 1, spread_key=key) >= d


def test_spread_differs_between_messages():
    delays = {retry_delay(3, spread_key=f"msg-{i}") for i in range(50)}
    assert len(delays) > 40
