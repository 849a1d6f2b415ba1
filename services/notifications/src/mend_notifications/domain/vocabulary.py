"""The words of the notifications domain: what can be sent, by which channel, in which language,
to whom, where its delivery stands, and what each kind of message may say.

Entrypoints map events, proto enums and JSON strings onto these. CONTEXT_FIELDS is the whole of
what a template can see: a value the service does not put in that list can never reach a
message, whatever an administrator writes in a template.
"""

MESSAGE_TYPES = (
    "referral_status", "case_accepted", "case_rejected", "consent_requested", "meeting_scheduled",
    "meeting_rescheduled", "meeting_cancelled", "meeting_reminder", "outcome_item_overdue", "victims_code_breach",
    "risk_approval_requested",
)
CHANNELS = ("email", "sms", "letter", "webhook")
PARTICIPANT_CHANNELS = ("email", "sms", "letter")       # in the order channels_for lists them
TEXT_CHANNELS = ("email", "sms", "letter")              # a webhook carries JSON, never a text template
LANGUAGES = ("en", "cy")
STATUSES = ("queued", "sending", "sent", "delivered", "failed", "bounced")
FINAL_STATUSES = ("delivered", "failed", "bounced")
RECIPIENT_KINDS = ("participant", "facilitator", "staff", "referrer")

# Where a message's delivery may move next. A provider's receipt can overtake our own record
# that the hand-over succeeded, so "sending" may jump straight to delivered or bounced; "queued"
# may fail without a try when the reason to send has gone (consent withdrawn, meeting over).
STATUS_TRANSITIONS = {
    "queued": frozenset({"sending", "failed"}),
    "sending": frozenset({"queued", "sent", "delivered", "failed", "bounced"}),   # queued again = retry
    "sent": frozenset({"delivered", "failed", "bounced"}),
    "delivered": frozenset(),
    "failed": frozenset(),
    "bounced": frozenset(),
}

# Who is told about what. Meetings go to the participants and facilitators on them; the three
# staff alerts go to the county's coordinators (breaches, overdue items) or managers (approvals).
RECIPIENTS = {
    "referral_status": ("referrer",),
    "case_accepted": ("referrer",),
    "case_rejected": ("referrer",),
    "consent_requested": ("participant",),
    "meeting_scheduled": ("participant", "facilitator"),
    "meeting_rescheduled": ("participant", "facilitator"),
    "meeting_cancelled": ("participant", "facilitator"),
    "meeting_reminder": ("participant", "facilitator"),
    "outcome_item_overdue": ("staff",),
    "victims_code_breach": ("staff",),
    "risk_approval_requested": ("staff",),
}
STAFF_ALERTS = ("outcome_item_overdue", "victims_code_breach", "risk_approval_requested")
REFERRER_MESSAGES = ("referral_status", "case_accepted", "case_rejected")
MEETING_MESSAGES = ("meeting_scheduled", "meeting_rescheduled", "meeting_cancelled", "meeting_reminder")
# Meeting messages carry a calendar file (.ics) by email; reminders do not change the event.
CALENDAR_MESSAGES = ("meeting_scheduled", "meeting_rescheduled", "meeting_cancelled")

# The channels each message type goes by. Staff alerts are email only: case details do not go
# by text message or post. The referring agency gets an email to its contact and, if it has
# registered one, a signed webhook (a JSON body, no text template).
MESSAGE_CHANNELS = {
    "referral_status": ("email", "webhook"),
    "case_accepted": ("email", "webhook"),
    "case_rejected": ("email", "webhook"),
    "consent_requested": PARTICIPANT_CHANNELS,
    "meeting_scheduled": PARTICIPANT_CHANNELS,
    "meeting_rescheduled": PARTICIPANT_CHANNELS,
    "meeting_cancelled": PARTICIPANT_CHANNELS,
    "meeting_reminder": PARTICIPANT_CHANNELS,
    "outcome_item_overdue": ("email",),
    "victims_code_breach": ("email",),
    "risk_approval_requested": ("email",),
}
TEMPLATE_CHANNELS = {t: tuple(c for c in cs if c in TEXT_CHANNELS) for t, cs in MESSAGE_CHANNELS.items()}

# -- what a template may say -------------------------------------------------------------------
# Every value is text already formatted for the message's language (dates as words, labels
# translated: see LABELS and templates.local_text), except where a comment says otherwise.
# Names in OPTIONAL_FIELDS may be missing: a template must test them with "is defined".
_COMMON = frozenset({
    "recipient_name",      # the person the message is addressed to ("Sam Taylor", or an agency contact)
    "service_name",        # the county RJ service's public name ("Cumbria Restorative Justice Service")
    "service_phone",       # the service's phone number, as text
    "service_email",       # the service's email address
})
_REFERRER = _COMMON | {
    "agency_name",         # the referring agency ("Cumbria Constabulary")
    "agency_reference",    # the agency's own reference for the referral, as it sent it
}
_MEETING = _COMMON | {
    "case_reference",      # the case's short reference, as staff and participants quote it
    "meeting_kind",        # label of the meeting kind ("restorative meeting", "preparation visit")
    "starts_at_local",     # start, local time, formatted ("Tuesday 16 June 2026 at 10:00")
    "ends_at_local",       # end time, local, formatted ("11:30")
    "venue_name",          # where ("Penrith Community Centre")
    "venue_address",       # the venue's address on one line
    "facilitator_names",   # the facilitators' names joined as text ("Alex Jones and Priya Shah")
    "arrival_note",        # optional: instructions for this recipient (separate entrance, arrival time)
    "other_party_name",    # optional: present only if a coordinator released it to this recipient
}
_STAFF = _COMMON | {
    "case_reference",
    "county",              # the county's name ("Cumbria")
}
CONTEXT_FIELDS = {
    # To the referring agency: its referral's status changed. status is the status label
    # (LABELS "referral_status"); detail the text the referrals service keeps for the agency.
    "referral_status": _REFERRER | {"status", "detail", "updated_on"},
    # To the referring agency: accepted for RJ. decided_on is a formatted date.
    "case_accepted": _REFERRER | {"case_reference", "decided_on"},
    # To the referring agency: not accepted, with the coordinator's reason as recorded.
    "case_rejected": _REFERRER | {"decided_on", "reason"},
    # To a participant: we ask for consent to take part. coordinator_name signs it; reply_by a date.
    "consent_requested": _COMMON | {"case_reference", "coordinator_name", "reply_by"},
    "meeting_scheduled": _MEETING,
    # previous_starts_at_local: when it was going to be, formatted like starts_at_local.
    "meeting_rescheduled": _MEETING | {"previous_starts_at_local"},
    "meeting_cancelled": _MEETING,
    # hours_before: the reminder's offset, an integer (48, 24).
    "meeting_reminder": _MEETING | {"hours_before"},
    # To coordinators: an outcome agreement item passed its due date. item_kind is a label;
    # due_on a formatted date; days_overdue an integer. The item's owner is not named.
    "outcome_item_overdue": _STAFF | {"item_kind", "due_on", "days_overdue"},
    # To coordinators: a Victims' Code clock ran out. clock is a label; started_on, due_on dates;
    # met_late a boolean (true: met, but after its last day; false: still unmet).
    "victims_code_breach": _STAFF | {"clock", "started_on", "due_on", "met_late"},
    # To managers: an assessment awaits approval. level is a label; requested_at_local formatted.
    "risk_approval_requested": _STAFF | {"level", "assessor_name", "requested_at_local"},
}
OPTIONAL_FIELDS = frozenset({"other_party_name", "arrival_note"})

# Details of a party that must never reach another party unless a coordinator released them.
PARTY_DETAIL_FIELDS = ("given_name", "family_name", "email", "phone", "address", "postcode")

# -- labels, per language ----------------------------------------------------------------------
# The other services' words as a recipient reads them. The Welsh must be reviewed by a Welsh
# speaker before production (see default_templates.py).
LABELS = {
    "meeting_kind": {   # the scheduling service's meeting kinds
        "en": {"preparation_visit": "preparation visit",
               "pre_prison_visit": "preparation visit before a prison meeting",
               "conference": "restorative meeting", "indirect_session": "indirect session",
               "supervision": "supervision session"},
        "cy": {"preparation_visit": "ymweliad paratoi",
               "pre_prison_visit": "ymweliad paratoi cyn cyfarfod yn y carchar",
               "conference": "cyfarfod adferol", "indirect_session": "sesiwn anuniongyrchol",
               "supervision": "sesiwn oruchwylio"},
    },
    "referral_status": {   # the referrals service's statuses
        "en": {"received": "received", "case_opened": "case opened", "accepted": "accepted",
               "rejected": "not accepted", "closed": "closed"},
        "cy": {"received": "wedi dod i law", "case_opened": "achos wedi'i agor", "accepted": "wedi'i dderbyn",
               "rejected": "heb ei dderbyn", "closed": "wedi'i gau"},
    },
    "clock": {   # the cases service's Victims' Code clocks
        "en": {"rj_information": "information about restorative justice",
               "support_referral": "referral to victim support"},
        "cy": {"rj_information": "gwybodaeth am gyfiawnder adferol",
               "support_referral": "atgyfeirio at gymorth i ddioddefwyr"},
    },
    "item_kind": {   # the cases service's outcome agreement items
        "en": {"apology": "apology", "reparation": "reparation", "community_work": "community work",
               "financial_restitution": "financial restitution", "behaviour_commitment": "commitment about behaviour"},
        "cy": {"apology": "ymddiheuriad", "reparation": "gwneud iawn", "community_work": "gwaith cymunedol",
               "financial_restitution": "ad-daliad ariannol", "behaviour_commitment": "ymrwymiad ynghylch ymddygiad"},
    },
    "level": {   # the risk service's levels
        "en": {"low": "low", "medium": "medium", "high": "high", "very_high": "very high"},
        "cy": {"low": "isel", "medium": "canolig", "high": "uchel", "very_high": "uchel iawn"},
    },
}


def label(kind: str, word: str, language: str) -> str:
    """A word of another service as a recipient reads it; an unknown word is shown as it is
    (with underscores as spaces) rather than stopping a message."""
    return LABELS[kind].get(language, LABELS[kind]["en"]).get(word) or word.replace("_", " ")


assert set(RECIPIENTS) == set(MESSAGE_TYPES) == set(MESSAGE_CHANNELS) == set(CONTEXT_FIELDS)
assert set(STATUS_TRANSITIONS) == set(STATUSES)
assert all(k in ("en", "cy") for kinds in LABELS.values() for k in kinds)
assert all(set(kinds["en"]) == set(kinds["cy"]) for kinds in LABELS.values()), "every label in both languages"


class NotificationProblem(ValueError):
    """Input the notifications domain refuses. `problems` lists (field, rule) so an entrypoint
    can name the field and the rule (INVALID_ARGUMENT), never a traceback."""

    what = "input"

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__(f"invalid {self.what}: " + "; ".join(f"{f}: {r}" for f, r in self.problems))
