"""Victims' Code clocks, counted in England and Wales working days.

Information about restorative justice is due within 5 working days of the crime being reported
(1 working day for a victim with enhanced rights), and referral to victim support within 2.
Each victim on a case gets both clocks; recording the action meets the clock, and a clock still
unmet once its last day has passed (or met after it) is a breach.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

from .case import Case, CaseParticipant, Clock
from .working_days import add_working_days

LOCAL = ZoneInfo("Europe/London")      # working days are days in England and Wales
RJ_INFORMATION_DAYS = 5
RJ_INFORMATION_DAYS_ENHANCED = 1
SUPPORT_REFERRAL_DAYS = 2
CLOCK_KINDS = ("rj_information", "support_referral")


def local_day(at: datetime) -> date:
    return at.astimezone(LOCAL).date()


def clock_start(case: Case) -> tuple[date, str]:
    """The day the crime was reported; a referral without that date counts from the offence
    date, the earliest the report can have been, so a clock never runs late by our guess."""
    if case.offence_reported_date:
        return date.fromisoformat(case.offence_reported_date), "crime reported"
    return date.fromisoformat(case.offence_date), "offence date (no report date given)"


def start_clocks(case: Case, victim: CaseParticipant, extra_holidays: frozenset[date] = frozenset()) -> list[Clock]:
    if victim.role != "victim":
        return []
    started, basis = clock_start(case)
    information_days = RJ_INFORMATION_DAYS_ENHANCED if has_enhanced_rights(case, victim) else RJ_INFORMATION_DAYS
    clocks = [
        Clock(str(uuid.uuid4()), "rj_information", victim.participant_id, started, basis,
              add_working_days(started, information_days, extra_holidays)),
        Clock(str(uuid.uuid4()), "support_referral", victim.participant_id, started, basis,
              add_working_days(started, SUPPORT_REFERRAL_DAYS, extra_holidays)),
    ]
    # Information already recorded for this person meets the clock at once.
    for clock in clocks:
        done = victim.information_offered_at if clock.kind == "rj_information" else victim.support_referral_at
        clock.met_at = done
    return clocks


# Victims' Code: victims of the most serious crime have enhanced rights.
MOST_SERIOUS_CRIME_FLAGS = ("domestic_abuse", "sexual_offence", "hate_crime", "serious_violence")


def has_enhanced_rights(case: Case, victim: CaseParticipant) -> bool:
    """Vulnerable (including every victim under 18), intimidated, persistently targeted or
    bereaved victims, and victims of the most serious crime."""
    return victim.role == "victim" and (victim.has_enhanced_rights or victim.is_youth
                                        or any(f in MOST_SERIOUS_CRIME_FLAGS for f in case.offence_flags))


def is_overdue(clock: Clock, today: date) -> bool:
    """Unmet with its last day gone."""
    return clock.met_at is None and today > clock.due_on


def was_met_late(clock: Clock) -> bool:
    return clock.met_at is not None and local_day(clock.met_at) > clock.due_on
