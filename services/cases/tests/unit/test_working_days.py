"""The England and Wales working-day calendar behind Victims' Code clocks: published bank holiday lists,
worked examples and properties of the working-day arithmetic."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mend_cases.domain.working_days import (
    _easter_sunday,
    add_working_days,
    england_and_wales_bank_holidays,
    is_working_day,
    parse_extra_holidays,
    working_days_between,
)

PROPERTY = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
DAYS = st.dates(min_value=date(1995, 1, 1), max_value=date(2099, 12, 31))
COUNTS = st.integers(min_value=1, max_value=400)


def d(text: str) -> date:
    return date.fromisoformat(text)


# The GOV.UK lists for England and Wales (https://www.gov.uk/bank-holidays), substitute days included.
PUBLISHED = {
    2019: ["01-01", "04-19", "04-22", "05-06", "05-27", "08-26", "12-25", "12-26"],
    2020: ["01-01", "04-10", "04-13", "05-08", "05-25", "08-31", "12-25", "12-28"],
    2021: ["01-01", "04-02", "04-05", "05-03", "05-31", "08-30", "12-27", "12-28"],
    2022: ["01-03", "04-15", "04-18", "05-02", "06-02", "06-03", "08-29", "09-19", "12-26", "12-27"],
    2023: ["01-02", "04-07", "04-10", "05-01", "05-08", "05-29", "08-28", "12-25", "12-26"],
    2024: ["01-01", "03-29", "04-01", "05-06", "05-27", "08-26", "12-25", "12-26"],
    2025: ["01-01", "04-18", "04-21", "05-05", "05-26", "08-25", "12-25", "12-26"],
    2026: ["01-01", "04-03", "04-06", "05-04", "05-25", "08-31", "12-25", "12-28"],
    2027: ["01-01", "03-26", "03-29", "05-03", "05-31", "08-30", "12-27", "12-28"],
}
# Earlier years with moved or one-off holidays.
HISTORICAL = {
    1995: ["01-02", "04-14", "04-17", "05-08", "05-29", "08-28", "12-25", "12-26"],
    1999: ["01-01", "04-02", "04-05", "05-03", "05-31", "08-30", "12-27", "12-28", "12-31"],
    2000: ["01-03", "04-21", "04-24", "05-01", "05-29", "08-28", "12-25", "12-26"],
    2002: ["01-01", "03-29", "04-01", "05-06", "06-03", "06-04", "08-26", "12-25", "12-26"],
    2011: ["01-03", "04-22", "04-25", "04-29", "05-02", "05-30", "08-29", "12-26", "12-27"],
    2012: ["01-02", "04-06", "04-09", "05-07", "06-04", "06-05", "08-27", "12-25", "12-26"],
}


@pytest.mark.parametrize("year", sorted(PUBLISHED | HISTORICAL))
def test_bank_holidays_match_the_published_list(year):
    expected = frozenset(d(f"{year}-{md}") for md in (PUBLISHED | HISTORICAL)[year])
    assert england_and_wales_bank_holidays(year) == expected


@pytest.mark.parametrize("sunday", ["1818-03-22", "2285-03-22", "1943-04-25", "2038-04-25", "2000-04-23",
                                    "2008-03-23", "2019-04-21", "2024-03-31", "2026-04-05", "2027-03-28"])
def test_easter_sunday(sunday):
    assert _easter_sunday(d(sunday).year) == d(sunday)


def test_every_year_has_its_holidays_on_weekdays_within_the_year():
    for year in range(1995, 2101):
        holidays = england_and_wales_bank_holidays(year)
        assert len(holidays) >= 8, year
        assert all(day.year == year and day.weekday() < 5 for day in holidays), (year, sorted(holidays))


def test_bank_holidays_are_cached_per_year():
    assert england_and_wales_bank_holidays(2031) is england_and_wales_bank_holidays(2031)


def test_is_working_day():
    assert is_working_day(d("2026-06-08"))  # Monday
    assert not is_working_day(d("2026-06-06"))  # Saturday
    assert not is_working_day(d("2026-06-07"))  # Sunday
    assert not is_working_day(d("2026-05-25"))  # Spring bank holiday
    assert not is_working_day(d("2026-06-08"), frozenset({d("2026-06-08")}))


# Worked examples -----------------------------------------------------------------------------------------------

def test_christmas_eve_plus_one_working_day_skips_christmas_the_weekend_and_the_boxing_day_substitute():
    assert add_working_days(d("2026-12-24"), 1) == d("2026-12-29")  # Thursday -> Tuesday


def test_easter_weekend():
    # Thursday 2 April 2026, the day before Good Friday: 3 Apr and 6 Apr are holidays, then 7-10 Apr and 13 Apr.
    assert add_working_days(d("2026-04-02"), 5) == d("2026-04-13")
    assert add_working_days(d("2026-04-02"), 6) == d("2026-04-14")


def test_reported_on_a_saturday():
    assert add_working_days(d("2026-06-06"), 1) == d("2026-06-08")  # the next Monday
    assert add_working_days(d("2026-05-02"), 1) == d("2026-05-05")  # that Monday is the Early May bank holiday


def test_over_a_weekend():
    assert add_working_days(d("2026-06-12"), 2) == d("2026-06-16")  # Friday -> Tuesday
    assert add_working_days(d("2026-06-11"), 2) == d("2026-06-15")  # Thursday -> Monday


def test_a_run_of_holidays_in_2011():
    # Good Friday, Easter Monday, the royal wedding and Early May within eleven days.
    assert add_working_days(d("2011-04-21"), 4) == d("2011-05-03")


def test_zero_working_days():
    assert add_working_days(d("2026-06-10"), 0) == d("2026-06-10")  # a working day: itself
    assert add_working_days(d("2026-06-06"), 0) == d("2026-06-08")  # Saturday: the next working day
    assert add_working_days(d("2026-12-25"), 0) == d("2026-12-29")


def test_negative_working_days_are_refused():
    with pytest.raises(ValueError):
        add_working_days(d("2026-06-10"), -1)


def test_extra_holidays_are_honoured():
    extra = frozenset({d("2026-06-15")})
    assert add_working_days(d("2026-06-12"), 1) == d("2026-06-15")
    assert add_working_days(d("2026-06-12"), 1, extra) == d("2026-06-16")
    assert working_days_between(d("2026-06-12"), d("2026-06-16"), extra) == 1
    assert not is_working_day(d("2026-06-15"), extra)


def test_working_days_between():
    assert working_days_between(d("2026-12-24"), d("2026-12-29")) == 1
    assert working_days_between(d("2026-06-08"), d("2026-06-08")) == 0
    assert working_days_between(d("2026-06-12"), d("2026-06-08")) == 0
    assert working_days_between(d("2026-06-05"), d("2026-06-12")) == 5


# MEND_EXTRA_BANK_HOLIDAYS ---------------------------------------------------------------------------------------

def test_parse_extra_holidays():
    assert parse_extra_holidays("") == frozenset()
    assert parse_extra_holidays("  \n ") == frozenset()
    assert parse_extra_holidays("2030-05-06") == {d("2030-05-06")}
    assert parse_extra_holidays(" 2030-05-06, 2030-06-07\n2030-07-08,,2030-05-06 ") == {
        d("2030-05-06"), d("2030-06-07"), d("2030-07-08")}


@pytest.mark.parametrize("bad", ["2030-13-01", "2030-02-30", "06/05/2030", "20300506", "tomorrow"])
def test_parse_extra_holidays_names_the_bad_item(bad):
    with pytest.raises(ValueError, match=bad):
        parse_extra_holidays(f"2030-05-06, {bad}")


# Properties -------------------------------------------------------------------------------------------------------

def weekday_holidays(start: date, end: date) -> int:
    """Bank holidays d with start < d <= end (all of them fall Monday to Friday)."""
    return sum(start < day <= end for year in range(start.year, end.year + 1)
               for day in england_and_wales_bank_holidays(year))


@PROPERTY
@given(DAYS, COUNTS)
def test_the_due_date_is_a_later_working_day(start, n):
    due = add_working_days(start, n)
    assert due > start
    assert is_working_day(due)


@PROPERTY
@given(DAYS, COUNTS)
def test_the_due_date_strictly_increases_with_n(start, n):
    assert add_working_days(start, n) < add_working_days(start, n + 1)


@PROPERTY
@given(DAYS)
def test_zero_and_one_coincide_only_when_start_is_not_a_working_day(start):
    # From a weekend or holiday, the first working day is both "on or after start" (n = 0) and the first
    # counted day (n = 1).
    assert add_working_days(start, 0) <= add_working_days(start, 1)
    assert (add_working_days(start, 0) == add_working_days(start, 1)) == (not is_working_day(start))


@PROPERTY
@given(DAYS, COUNTS)
def test_working_days_between_inverts_add_working_days(start, n):
    due = add_working_days(start, n)
    assert working_days_between(start, due) == n
    assert working_days_between(start, due - timedelta(days=1)) == n - 1


@PROPERTY
@given(DAYS, COUNTS, st.frozensets(DAYS, max_size=20))
def test_inverse_holds_with_extra_holidays(start, n, extra):
    due = add_working_days(start, n, extra)
    assert due not in extra and is_working_day(due, extra)
    assert working_days_between(start, due, extra) == n


@PROPERTY
@given(DAYS, COUNTS)
def test_the_calendar_span_is_bounded(start, n):
    # The due date is the k-th weekday after start, where k = n + the bank holidays passed over. The k-th weekday
    # after any day is at most 7 * (k // 5) + k % 5 + 2 calendar days later (full weeks, the rest, one weekend).
    # A bound in n alone would not do: from Thursday 21 April 2011, 4 working days take 12 calendar days.
    due = add_working_days(start, n)
    span = (due - start).days
    k = n + weekday_holidays(start, due)
    assert n <= span <= 7 * (k // 5) + k % 5 + 2


@PROPERTY
@given(DAYS, st.integers(min_value=1, max_value=60))
def test_short_clocks_have_a_simple_bound(start, n):
    # No stretch of 60 working days from 1995 to 2099 passes over more than five bank holidays (checked
    # exhaustively; five in spring 2002, 2012 and 2022: Easter, Early May and a jubilee pair). With k <= n + 5 in
    # the bound above and n = 5q + r: span <= 7(q + 1) + r + 2 <= n * 7 // 5 + 9. It is reached from 14 March 2002.
    assert (add_working_days(start, n) - start).days <= n * 7 // 5 + 9
    assert (add_working_days(date(2002, 3, 14), 57) - date(2002, 3, 14)).days == 57 * 7 // 5 + 9


@PROPERTY
@given(DAYS)
def test_zero_days_is_the_first_working_day_on_or_after_start(start):
    due = add_working_days(start, 0)
    assert due >= start and is_working_day(due)
    assert all(not is_working_day(start + timedelta(days=i)) for i in range((due - start).days))
