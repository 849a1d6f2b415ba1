"""Moments, people and settings shared by the notifications unit tests."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings

PROPERTY = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
# For properties whose every example compiles a new template or builds large inputs.
FEWER = settings(PROPERTY, max_examples=50)
UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def london(*args, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=LONDON, fold=fold)


# Two parties to one harm and a supporter, with every detail the confidentiality rule knows.
VICTIM, RESPONSIBLE, SUPPORTER = "p-victim", "p-responsible", "p-supporter"
PARTIES = {
    VICTIM: {"given_name": "Siân", "family_name": "Pritchard", "email": "sian.pritchard@example.org",
             "phone": "07700 900123", "address": "Flat 2\n14 Castle Street\nPenrith", "postcode": "CA11 7PT"},
    RESPONSIBLE: {"given_name": "Jordan", "family_name": "Blackwood", "email": "jb1999@example.net",
                  "phone": "+44 7700 900456", "address": "3 Beacon Edge\nPenrith", "postcode": "CA11 8BN"},
    SUPPORTER: {"given_name": "Carys", "family_name": "Pritchard", "email": "carys@example.org",
                "phone": "01768 900789", "address": "Flat 2\n14 Castle Street\nPenrith", "postcode": "CA11 7PT"},
}
