"""A referral as the cases service receives it, and a case opened from it: shared by the cases
unit tests."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from mend_cases.domain.case import Case, open_case

RECEIVED = datetime(2026, 6, 1, 9, 30, tzinfo=timezone.utc)
OPENED = RECEIVED + timedelta(seconds=2)
AGENCY = str(uuid.uuid4())


def referral(**changes) -> dict:
    """A referral as the referrals service puts it in referral_received (its draft's to_dict())."""
    data = {
        "agency_reference": "CUM-0001", "county": "cumbria",
        "offence": {"type": "burglary dwelling", "category": "burglary", "date": "2026-05-20",
                    "reported_date": None, "domestic_abuse": False, "sexual_offence": False,
                    "hate_crime": False, "serious_violence": False},
        "initiated_by": "victim_led",
        "participants": [
            {"role": "victim", "given_name": "Ann", "family_name": "Smith", "date_of_birth": None, "age": 40,
             "contact": {"email": "ann@example.org", "phone": "", "address": "", "postcode": "",
                         "preferred_channel": "email"},
             "vulnerabilities": ["intimidated"], "consent_to_contact": True, "notes": ""},
            {"role": "responsible_person", "given_name": "Bob", "family_name": "", "date_of_birth": "2008-06-02",
             "age": None, "contact": {"email": "", "phone": "", "address": "", "postcode": "",
                                      "preferred_channel": ""},
             "vulnerabilities": [], "consent_to_contact": False, "notes": ""},
        ],
        "reason": "",
    }
    data.update(changes)
    return data


def open_from(data, received_at=RECEIVED, referral_id="r-1") -> Case:
    return open_case(referral_id=referral_id, county="cumbria", agency_id=AGENCY, received_at=received_at,
                     referral=data, opened_at=OPENED)
