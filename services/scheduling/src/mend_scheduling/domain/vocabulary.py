"""The scheduling service's words: meeting kinds, venue kinds, training levels and the like.
Kept in one place so the domain, the gRPC mapping and the tests agree."""
from __future__ import annotations

MEETING_KINDS = ("preparation_visit", "pre_prison_visit", "conference", "indirect_session", "supervision")
# Meetings where the parties (or a party and the facilitators) are in one room: the risk
# service's safety gate must allow them before they are booked.
DIRECT_KINDS = frozenset({"pre_prison_visit", "conference"})

# Default length in minutes, including setting up and the facilitators' debrief afterwards.
DEFAULT_MINUTES = {
    "preparation_visit": 90,
    "pre_prison_visit": 120,
    "conference": 180,
    "indirect_session": 90,
    "supervision": 60,
}
# Facilitators a meeting needs unless the case says otherwise: a conference is always co-facilitated.
DEFAULT_FACILITATORS = {
    "preparation_visit": 1,
    "pre_prison_visit": 1,
    "conference": 2,
    "indirect_session": 1,
    "supervision": 1,
}

VENUE_KINDS = ("community_room", "police_station", "probation_office", "prison", "school", "participants_home")
TRAINING_LEVELS = ("foundation", "practitioner", "advanced")
TRAINING_RANK = {level: rank for rank, level in enumerate(TRAINING_LEVELS)}
FACILITATOR_KINDS = ("staff", "volunteer")
ACCESSIBILITY_FEATURES = ("step_free", "hearing_loop", "accessible_toilet", "quiet_room", "large_print", "parking")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Languages are BCP 47 primary tags; English is assumed, Welsh (cy) is the one most often asked for.
KNOWN_LANGUAGES = ("en", "cy", "pl", "ur", "pa", "ar", "ro", "bn", "so", "bsl")
MEETING_STATES = ("scheduled", "cancelled", "completed")
