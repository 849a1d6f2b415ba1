"""Who may read, make and approve risk assessments, and ask the safety gate.

Risk assessments hold criminal offence data and health details, so the circle is small:
coordinators, managers and auditors of the county read them; a facilitator only on a case
allocated to them. Coordinators and allocated facilitators assess; managers approve (never
their own assessment: the Assessment enforces that). Partner agencies and administrators see
nothing, and another county's assessments do not exist for you.
"""
from __future__ import annotations

from typing import Collection

from mend_common.auth import Principal

COUNTY_READERS = ("coordinator", "manager", "auditor")
ASSESSORS = ("coordinator",)          # plus the facilitators allocated to the case
APPROVERS = ("manager",)
RULE_READERS = ("coordinator", "manager", "auditor", "facilitator")
# The gate answers allow or deny with reasons, without the factors behind them: other Mend
# services ask it, and so may the staff who arrange meetings.
GATE_ASKERS = ("coordinator", "manager")


def _staff_of(principal: Principal, county: str) -> bool:
    return principal.kind == "staff" and county in principal.counties


def _allocated(principal: Principal, allocated_facilitators: Collection[str]) -> bool:
    return "facilitator" in principal.roles and principal.subject in allocated_facilitators


def can_read(principal: Principal, county: str, allocated_facilitators: Collection[str]) -> bool:
    if not _staff_of(principal, county):
        return False
    return principal.has_any_role(*COUNTY_READERS) or _allocated(principal, allocated_facilitators)


def can_assess(principal: Principal, county: str, allocated_facilitators: Collection[str]) -> bool:
    if not _staff_of(principal, county):
        return False
    return principal.has_any_role(*ASSESSORS) or _allocated(principal, allocated_facilitators)


def can_approve(principal: Principal, county: str) -> bool:
    return _staff_of(principal, county) and principal.has_any_role(*APPROVERS)


def can_expire(principal: Principal, county: str, allocated_facilitators: Collection[str]) -> bool:
    """Marking an assessment out of date (new information) is for those who assess or approve."""
    return can_assess(principal, county, allocated_facilitators) or can_approve(principal, county)


def can_read_rules(principal: Principal) -> bool:
    """The rules hold no personal data: any member of staff who works with cases may read them."""
    return principal.kind == "staff" and principal.has_any_role(*RULE_READERS)


def can_check_safety(principal: Principal, county: str, allocated_facilitators: Collection[str] = ()) -> bool:
    """Other Mend services (with a service token covering the county), and the staff who arrange
    meetings: coordinators, managers and the case's allocated facilitators."""
    if principal.kind == "service":
        return principal.covers(county)
    if not _staff_of(principal, county):
        return False
    return principal.has_any_role(*GATE_ASKERS) or _allocated(principal, allocated_facilitators)
