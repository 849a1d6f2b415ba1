"""Who may read, make and approve risk assessments, read the rules and ask the gate."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mend_common.auth import Principal
from risk_examples import PROPERTY, staff
from mend_risk.domain.access import (can_approve, can_assess, can_check_safety, can_expire, can_read,
                                     can_read_rules)

ALLOCATED = ["f1"]
AGENCY = Principal(kind="agency", subject="agency-1", roles=frozenset({"partner"}), counties=frozenset({"cumbria"}))
SERVICE = Principal(kind="service", subject="scheduling", roles=frozenset({"service"}), counties=frozenset({"*"}))
SERVICE_LANCS = Principal(kind="service", subject="scheduling", roles=frozenset({"service"}),
                          counties=frozenset({"lancashire"}))

# principal -> (read, assess, approve, expire, read rules, check safety) on a cumbria case allocated to f1
ACCESS = [
    (staff("coordinator"), (True, True, False, True, True, True)),
    (staff("manager"), (True, False, True, True, True, True)),
    (staff("auditor"), (True, False, False, False, True, False)),
    (staff("facilitator", subject="f1"), (True, True, False, True, True, True)),
    (staff("facilitator", subject="f2"), (False, False, False, False, True, False)),
    (staff("admin"), (False, False, False, False, False, False)),
    (staff("coordinator", "manager"), (True, True, True, True, True, True)),
    # another county sees nothing of this one (the rules hold no personal data)
    (staff("coordinator", counties=("lancashire",)), (False, False, False, False, True, False)),
    (staff("manager", counties=("lancashire",)), (False, False, False, False, True, False)),
    (staff("facilitator", subject="f1", counties=("lancashire",)), (False, False, False, False, True, False)),
    (staff("manager", counties=("cumbria", "lancashire")), (True, False, True, True, True, True)),
    (AGENCY, (False, False, False, False, False, False)),
    (SERVICE, (False, False, False, False, False, True)),
    (SERVICE_LANCS, (False, False, False, False, False, False)),
]


@pytest.mark.parametrize("principal, expected", ACCESS)
def test_access_table(principal, expected):
    assert (can_read(principal, "cumbria", ALLOCATED), can_assess(principal, "cumbria", ALLOCATED),
            can_approve(principal, "cumbria"), can_expire(principal, "cumbria", ALLOCATED),
            can_read_rules(principal), can_check_safety(principal, "cumbria", ALLOCATED)) == expected


def test_an_agency_with_staff_like_roles_still_sees_nothing():
    odd = Principal(kind="agency", subject="f1", roles=frozenset({"coordinator", "manager", "facilitator"}),
                    counties=frozenset({"cumbria"}))
    assert not any((can_read(odd, "cumbria", ALLOCATED), can_assess(odd, "cumbria", ALLOCATED),
                    can_approve(odd, "cumbria"), can_read_rules(odd), can_check_safety(odd, "cumbria", ALLOCATED)))


ROLES = st.sets(st.sampled_from(["coordinator", "manager", "auditor", "facilitator", "admin", "partner"]))
COUNTIES = st.sets(st.sampled_from(["cumbria", "lancashire"]))


@PROPERTY
@given(ROLES, COUNTIES, st.sampled_from(["staff", "agency", "service"]), st.lists(st.sampled_from(["f1", "f2"]),
                                                                               max_size=2))
def test_whoever_may_assess_or_approve_may_read_and_other_counties_see_nothing(roles, counties, kind, allocated):
    p = Principal(kind=kind, subject="f1", roles=frozenset(roles), counties=frozenset(counties))
    for county in ("cumbria", "lancashire"):
        read = can_read(p, county, allocated)
        assert not can_assess(p, county, allocated) or read
        assert not can_approve(p, county) or read
        assert not can_expire(p, county, allocated) or read
        if county not in counties or kind != "staff":
            assert not (read or can_assess(p, county, allocated) or can_approve(p, county))
        # approving needs the manager role, and only the manager role
        assert can_approve(p, county) == (kind == "staff" and county in counties and "manager" in roles)
        # a facilitator assesses only the cases allocated to them
        if roles == {"facilitator"}:
            assert can_assess(p, county, allocated) == (kind == "staff" and county in counties and "f1" in allocated)
