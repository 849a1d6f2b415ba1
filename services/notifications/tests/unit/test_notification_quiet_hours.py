"""Quiet hours: a message waits until they end, read off the person's wall clock, including on
the nights the clocks change; letters never wait."""
from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from notification_examples import PROPERTY, UTC, london, utc
from mend_notifications.domain.policy import (ContactPreferences, PreferencesProblem, in_quiet_hours,
                                              next_send_time)


def prefs(start: str | None = "21:00", end: str | None = "08:00") -> ContactPreferences:
    return ContactPreferences(frozenset({"email", "sms", "letter"}),
                              quiet_start=time.fromisoformat(start) if start else None,
                              quiet_end=time.fromisoformat(end) if end else None)


@pytest.mark.parametrize("window, now, expected", [
    # No quiet hours: now.
    ((None, None), utc(2026, 6, 1, 23, 0), utc(2026, 6, 1, 23, 0)),
    # 21:00-08:00 in summer (BST, UTC+1): 22:00 local waits for 08:00 local the next day.
    (("21:00", "08:00"), utc(2026, 6, 1, 21, 0), utc(2026, 6, 2, 7, 0)),
    (("21:00", "08:00"), london(2026, 6, 2, 7, 59, 59), london(2026, 6, 2, 8, 0)),
    (("21:00", "08:00"), london(2026, 6, 2, 0, 5), london(2026, 6, 2, 8, 0)),
    # The start is quiet, the end is not.
    (("21:00", "08:00"), london(2026, 6, 1, 21, 0), london(2026, 6, 2, 8, 0)),
    (("21:00", "08:00"), london(2026, 6, 2, 8, 0), london(2026, 6, 2, 8, 0)),
    (("21:00", "08:00"), london(2026, 6, 1, 20, 59, 59), london(2026, 6, 1, 20, 59, 59)),
    # In winter (GMT) local is UTC.
    (("21:00", "08:00"), utc(2026, 1, 10, 23, 0), utc(2026, 1, 11, 8, 0)),
    # A window within one day.
    (("12:00", "14:00"), london(2026, 6, 1, 13, 0), london(2026, 6, 1, 14, 0)),
    (("12:00", "14:00"), london(2026, 6, 1, 14, 30), london(2026, 6, 1, 14, 30)),
    # The clocks go forward in the night (29 March 2026, 01:00 UTC): the night is an hour shorter.
    (("21:00", "08:00"), utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 7, 0)),
    # ...and back (25 October 2026, 01:00 UTC): an hour longer.
    (("21:00", "08:00"), utc(2026, 10, 24, 21, 30), utc(2026, 10, 25, 8, 0)),
    # A window ending inside the skipped hour ends when the clocks jump past it.
    (("00:30", "01:30"), utc(2026, 3, 29, 0, 40), utc(2026, 3, 29, 1, 0)),
    # A window ending inside the repeated hour: the first 01:30 if we are in the first pass...
    (("00:30", "01:30"), utc(2026, 10, 25, 0, 10), utc(2026, 10, 25, 0, 30)),
    # ...the second 01:30 if we are already in the second.
    (("00:30", "01:30"), utc(2026, 10, 25, 1, 10), utc(2026, 10, 25, 1, 30)),
    # The clocks going back out of the window (01:45 BST becomes 01:00 GMT, before 01:40).
    (("01:40", "03:00"), utc(2026, 10, 25, 0, 45), utc(2026, 10, 25, 1, 0)),
])
def test_next_send_time(window, now, expected):
    assert next_send_time(now, prefs(*window)) == expected
    assert next_send_time(now, prefs(*window)).tzinfo == UTC


def test_another_time_zone_is_read_on_its_own_clock():
    # 21:00-08:00 in New York (UTC-4 in June): 03:00 UTC is 23:00 there.
    assert next_send_time(utc(2026, 6, 2, 3, 0), prefs(), tz="America/New_York") == utc(2026, 6, 2, 12, 0)
    assert next_send_time(utc(2026, 6, 2, 3, 0), prefs(), "sms", "America/New_York") == utc(2026, 6, 2, 12, 0)
    with pytest.raises(ValueError):      # a time zone where the channel goes
        next_send_time(utc(2026, 6, 2, 3, 0), prefs(), "America/New_York")


@pytest.mark.parametrize("channel, held", [("letter", False), ("email", True), ("sms", True), (None, True)])
def test_letters_are_never_held(channel, held):
    now = london(2026, 6, 1, 23, 0)
    assert (next_send_time(now, prefs(), channel=channel) != now) is held
    assert (next_send_time(now, prefs(), channel) != now) is held


def test_times_must_be_aware_and_quiet_hours_complete():
    with pytest.raises(ValueError):
        next_send_time(datetime(2026, 6, 1, 23, 0), prefs())
    with pytest.raises(PreferencesProblem) as e:
        prefs("21:00", None)
    assert e.value.problems == [("quiet_end", "quiet hours need both a start and an end")]
    with pytest.raises(PreferencesProblem) as e:
        prefs("08:00", "08:00")
    assert e.value.problems == [("quiet_end", "quiet hours cannot start and end at the same time")]


# -- properties --------------------------------------------------------------------------------
def _moments():
    anywhen = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))
    # The nights the clocks change, where mistakes hide.
    nights = [utc(2025, 3, 30), utc(2025, 10, 26), utc(2026, 3, 29), utc(2026, 10, 25), utc(2027, 3, 28),
              utc(2027, 10, 31)]
    near_change = st.builds(lambda night, seconds: night + timedelta(seconds=seconds),
                            st.sampled_from(nights), st.integers(-6 * 3600, 6 * 3600))
    return st.one_of(anywhen, near_change)


clock_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 40, 45, 59]))


@PROPERTY
@given(_moments(), clock_times, clock_times)
@example(utc(2026, 10, 25, 0, 45), time(1, 40), time(3, 0))
@example(utc(2026, 3, 29, 0, 40), time(0, 30), time(1, 30))
def test_the_answer_is_never_inside_quiet_hours_and_nothing_earlier_was_free(now, start, end):
    if start == end:
        return
    p = ContactPreferences(frozenset({"email"}), quiet_start=start, quiet_end=end)
    at = next_send_time(now, p)
    assert at >= now
    assert not in_quiet_hours(at, p)
    assert at - now <= timedelta(hours=25)
    if at > now:
        # Every moment from now until the answer was quiet: the earliest free moment was chosen.
        span = at - now
        for share in (0, 0.25, 0.5, 0.75, 0.999):
            assert in_quiet_hours(now + span * share, p)
        assert in_quiet_hours(max(now, at - timedelta(seconds=1)), p)
    else:
        assert not in_quiet_hours(now, p)


@PROPERTY
@given(_moments(), clock_times, clock_times)
def test_a_letter_goes_now_whatever_the_hour(now, start, end):
    if start == end:
        return
    p = ContactPreferences(frozenset({"letter"}), quiet_start=start, quiet_end=end)
    assert next_send_time(now, p, channel="letter") == now
