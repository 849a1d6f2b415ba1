"""The demo region `make run` seeds: two counties, partner agencies with API keys, and staff tokens."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .client import ReferralsClient

COUNTIES = ("cumbria", "lancashire")
AGENCIES = (
    ("Cumbria Constabulary", "cumbria", "police"),
    ("Victim Support Cumbria", "cumbria", "victim_support"),
    ("Lancashire Probation Delivery Unit", "lancashire", "probation"),
    ("Lancashire Youth Justice Service", "lancashire", "youth_offending_team"),
)
STAFF = (
    ("coord-cumbria", "Cumbria RJ coordinator", ["coordinator"], ["cumbria"]),
    ("coord-lancashire", "Lancashire RJ coordinator", ["coordinator"], ["lancashire"]),
    ("manager-region", "Regional RJ manager", ["manager"], list(COUNTIES)),
    ("it-admin", "Regional IT administrator", ["admin"], list(COUNTIES)),
)


def seed(stack, credentials_file: Path) -> dict:
    """Create the demo agencies and credentials once; later runs reuse the saved file."""
    admin = stack.token(["admin"], COUNTIES, subject="it-admin", name="Regional IT administrator")
    client = ReferralsClient(stack.grpc_target("referrals"), token=admin)
    existing = {a.name: a for a in client.list_agencies().agencies}
    saved = json.loads(credentials_file.read_text()) if credentials_file.exists() else {"agencies": {}}
    agencies = {}
    for name, county, kind in AGENCIES:
        agency = existing.get(name) or client.create_agency(name, county, kind)
        entry = saved["agencies"].get(name)
        if not entry or entry.get("agency_id") != agency.agency_id:
            key = client.issue_key(agency.agency_id, label="demo")
            entry = {"agency_id": agency.agency_id, "county": county, "kind": kind, "api_key": key.api_key}
        agencies[name] = entry
    staff = {subject: {"name": name, "roles": roles, "counties": counties,
                       "token": stack.token(roles, counties, subject=subject, name=name)}
             for subject, name, roles, counties in STAFF}
    result = {"agencies": agencies, "staff": staff}
    fd = os.open(credentials_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(result, fh, indent=2)
    return result


EXAMPLE_REFERRAL = {
    "agency_reference": "CC/2026/0001",
    "county": "cumbria",
    "offence": {"type": "burglary dwelling", "category": "burglary", "date": "2026-10-02",
                "reported_date": "2026-10-02"},
    "initiated_by": "victim_led",
    "participants": [
        {"role": "victim", "given_name": "Alex", "family_name": "Example", "age": 52,
         "contact": {"email": "alex@example.org", "preferred_channel": "email"}, "consent_to_contact": True},
        {"role": "responsible_person", "given_name": "Sam", "family_name": "Sample", "date_of_birth": "2008-03-14"},
    ],
    "reason": "The victim asked the officer in charge about meeting the person responsible.",
}
