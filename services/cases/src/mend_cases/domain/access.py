"""Who may read a case file and who may do what to it."""
from __future__ import annotations

# Coordinators and managers see their counties' cases; auditors read them; a facilitator sees
# only the cases allocated to them; partner agencies and administrators see none.
COUNTY_READERS = ("coordinator", "manager", "auditor")
COUNTY_WRITERS = ("coordinator", "manager")

# Action -> roles that may take it. A facilitator takes part only on cases allocated to them.
ACTIONS: dict[str, tuple[str, ...]] = {
    "decide_eligibility": ("coordinator", "manager"),
    "move_stage": ("coordinator", "manager"),
    "choose_intervention": ("coordinator", "manager"),
    "add_participant": ("coordinator", "manager"),
    "record_consent": ("coordinator", "manager", "facilitator"),
    "record_information_offered": ("coordinator", "manager", "facilitator"),
    "record_support_referral": ("coordinator", "manager", "facilitator"),
    "add_note": ("coordinator", "manager", "facilitator"),
    "allocate_facilitators": ("coordinator", "manager"),
    "record_outcome": ("coordinator", "manager", "facilitator"),
    "record_follow_up": ("coordinator", "manager", "facilitator"),
    "close_case": ("coordinator", "manager"),
    "retention_hold": ("manager",),
}


def can_read(principal, county: str, facilitator_ids: list[str]) -> bool:
    if principal.kind != "staff" or county not in principal.counties:
        return False
    if principal.has_any_role(*COUNTY_READERS):
        return True
    return "facilitator" in principal.roles and principal.subject in facilitator_ids


def can_act(principal, action: str, county: str, facilitator_ids: list[str]) -> bool:
    if principal.kind != "staff" or county not in principal.counties:
        return False
    roles = ACTIONS[action]
    if principal.has_any_role(*(r for r in roles if r != "facilitator")):
        return True
    return "facilitator" in roles and "facilitator" in principal.roles and principal.subject in facilitator_ids
