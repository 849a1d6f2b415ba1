"""The England and Wales working-day calendar used for Victims' Code clocks. Plain Python: no framework imports.

Bank holidays are computed from the standing rules (New Year's Day, Good Friday, Easter Monday, the Early May,
Spring and Summer bank holidays, Christmas Day and Boxing Day, with weekend substitutes) plus the known moved days
and one-off holidays up to the time of writing. A newly announced one-off holiday is not known here: deployments
add it through MEND_EXTRA_BANK_HOLIDAYS (see parse_extra_holidays) and pass the result as extra_holidays.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from functools import lru_cache

MONDAY, FRIDAY, SATURDAY, SUNDAY = 0, 4, 5, 6

# One-off bank holidays proclaimed in addition to the standing ones.
_ONE_OFFS = frozenset({
    date(1999, 12, 31),  # Millennium
    date(2002, 6, 3),  # Golden Jubilee of Queen Elizabeth II
    date(2011, 4, 29),  # Wedding of Prince William and Catherine Middleton
    date(2012, 6, 5),  # Diamond Jubilee of Queen Elizabeth II
    date(2022, 6, 3),  # Platinum Jubilee of Queen Elizabeth II
    date(2022, 9, 19),  # State funeral of Queen Elizabeth II
    date(2023, 5, 8),  # Coronation of King Charles III
})
# Years in which the Early May bank holiday was not the first Monday of May.
_EARLY_MAY_MOVED = {1995: date(1995, 5, 8), 2020: date(2020, 5, 8)}  # VE Day 50th and 75th anniversaries
# Years in which the Spring bank holiday was not the last Monday of May (moved for jubilees).
_SPRING_MOVED = {2002: date(2002, 6, 4), 2012: date(2012, 6, 4), 2022: date(2022, 6, 2)}

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _easter_sunday(year: int) -> date:
    """Easter Sunday in the Gregorian calendar (the anonymous Gregorian, or Meeus/Jones/Butcher, algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741 - the algorithm's own name
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _first_monday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(MONDAY - first.weekday()) % 7)


def _last_monday(year: int, month: int) -> date:
    last = (date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - MONDAY) % 7)


def _christmas(year: int) -> set[date]:
    christmas = date(year, 12, 25)
    if christmas.weekday() == SATURDAY:  # Christmas on Monday 27th, Boxing Day on Tuesday 28th
        return {date(year, 12, 27), date(year, 12, 28)}
    if christmas.weekday() == SUNDAY:  # Boxing Day on Monday 26th, Christmas substitute on Tuesday 27th
        return {date(year, 12, 26), date(year, 12, 27)}
    if christmas.weekday() == FRIDAY:  # Boxing Day falls on Saturday: substitute Monday 28th
        return {christmas, date(year, 12, 28)}
    return {christmas, date(year, 12, 26)}


@lru_cache(maxsize=None)
def england_and_wales_bank_holidays(year: int) -> frozenset[date]:
    """The bank holidays in England and Wales in `year` (substitute days included, weekend dates excluded)."""
    new_year = date(year, 1, 1)
    if new_year.weekday() >= SATURDAY:
        new_year += timedelta(days=7 - new_year.weekday())  # the following Monday
    easter = _easter_sunday(year)
    holidays = {
        new_year,
        easter - timedelta(days=2),  # Good Friday
        easter + timedelta(days=1),  # Easter Monday
        _EARLY_MAY_MOVED.get(year, _first_monday(year, 5)),
        _SPRING_MOVED.get(year, _last_monday(year, 5)),
        _last_monday(year, 8),  # Summer bank holiday
        *_christmas(year),
    }
    holidays.update(d for d in _ONE_OFFS if d.year == year)
    return frozenset(holidays)


def is_working_day(day: date, extra_holidays: frozenset[date] = frozenset()) -> bool:
    """Monday to Friday, and neither a bank holiday nor one of `extra_holidays`."""
    return (
        day.weekday() < SATURDAY
        and day not in extra_holidays
        and day not in england_and_wales_bank_holidays(day.year)
    )


def add_working_days(start: date, n: int, extra_holidays: frozenset[date] = frozenset()) -> date:
    """The date by which something due "within n working days of start" must happen.

    Days are counted forward from the day after `start` (start itself does not count), working days only.
    With n == 0 the answer is `start` if it is a working day, otherwise the next working day.
    """
    if n < 0:
        raise ValueError(f"n must be zero or more, got {n}")
    day = start
    if n == 0:
        while not is_working_day(day, extra_holidays):
            day += timedelta(days=1)
        return day
    counted = 0
    while counted < n:
        day += timedelta(days=1)
        if is_working_day(day, extra_holidays):
            counted += 1
    return day


def working_days_between(start: date, end: date, extra_holidays: frozenset[date] = frozenset()) -> int:
    """How many working days d there are with start < d <= end (0 when end <= start)."""
    count = 0
    day = start + timedelta(days=1)
    while day <= end:
        if is_working_day(day, extra_holidays):
            count += 1
        day += timedelta(days=1)
    return count


def parse_extra_holidays(text: str) -> frozenset[date]:
    """ISO dates (YYYY-MM-DD) separated by commas and/or whitespace, as in MEND_EXTRA_BANK_HOLIDAYS.

    An empty or blank string gives no dates. Raises ValueError naming the first item that is not a valid date.
    """
    days = set()
    for item in re.split(r"[,\s]+", text or ""):
        if not item:
            continue
        try:
            if not _ISO_DATE.fullmatch(item):
                raise ValueError("not in YYYY-MM-DD form")
            days.add(date.fromisoformat(item))
        except ValueError as exc:
            raise ValueError(f"extra bank holiday {item!r} is not a valid ISO date (YYYY-MM-DD): {exc}") from None
    return frozenset(days)
