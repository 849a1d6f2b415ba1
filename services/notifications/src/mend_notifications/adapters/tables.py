from sqlalchemy import Boolean, Column, DateTime, Index, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text

from mend_common.tables import platform_tables

metadata = MetaData()
platform = platform_tables(metadata)

# Every message to every recipient by every channel, and where its delivery stands. The
# dedupe key (event or reminder, recipient, channel) makes a redelivered event a no-op.
messages = Table(
    "messages", metadata,
    Column("message_id", String(36), primary_key=True),
    Column("dedupe_key", String(300), nullable=False, unique=True),
    Column("event_id", String(64), nullable=False),
    Column("county", String(64), nullable=False),
    Column("case_id", String(36), nullable=False, server_default=""),
    Column("message_type", String(40), nullable=False),
    Column("channel", String(10), nullable=False),
    Column("recipient_kind", String(20), nullable=False),
    Column("recipient_id", String(200), nullable=False),
    Column("address", Text, nullable=False),            # email, phone, postal address (JSON) or webhook URL
    Column("language", String(5), nullable=False),
    Column("template_version", Integer, nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("attachments", Text, nullable=False, server_default="[]"),   # JSON [{filename, mime, base64}]
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("claimed_until", DateTime(timezone=True)),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("provider_ref", String(200), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Column("delivered_at", DateTime(timezone=True)),
)
# The dispatcher: due messages in order of when they are due.
Index("ix_messages_due", messages.c.status, messages.c.next_attempt_at)
Index("ix_messages_case", messages.c.county, messages.c.case_id, messages.c.created_at)

templates = Table(
    "templates", metadata,
    Column("message_type", String(40), nullable=False),
    Column("channel", String(10), nullable=False),
    Column("language", String(5), nullable=False),
    Column("version", Integer, nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("saved_by", String(200), nullable=False),
    Column("saved_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("message_type", "channel", "language", "version", name="pk_templates"),
)

contact_preferences = Table(
    "contact_preferences", metadata,
    Column("case_id", String(36), nullable=False),
    Column("participant_id", String(36), nullable=False),
    Column("county", String(64), nullable=False),
    Column("channels", Text, nullable=False),            # JSON list
    Column("language", String(5), nullable=False),
    Column("quiet_start", String(5), nullable=False, server_default=""),
    Column("quiet_end", String(5), nullable=False, server_default=""),
    Column("updated_by", String(200), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("case_id", "participant_id", name="pk_contact_preferences"),
)

releases = Table(
    "releases", metadata,
    Column("case_id", String(36), nullable=False),
    Column("about_participant_id", String(36), nullable=False),
    Column("to_participant_id", String(36), nullable=False),
    Column("field", String(30), nullable=False),
    Column("county", String(64), nullable=False),
    Column("released_by", String(200), nullable=False),
    Column("released_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint("case_id", "about_participant_id", "to_participant_id", "field", name="pk_releases"),
)

staff_contacts = Table(
    "staff_contacts", metadata,
    Column("county", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("roles", Text, nullable=False),               # JSON list
    Column("language", String(5), nullable=False),
    Column("active", Boolean, nullable=False),
    PrimaryKeyConstraint("county", "subject", name="pk_staff_contacts"),
)

referrer_contacts = Table(
    "referrer_contacts", metadata,
    Column("agency_id", String(36), primary_key=True),
    Column("county", String(64), nullable=False),
    Column("webhook_url", Text, nullable=False, server_default=""),
    # The HMAC key has to be usable to sign, so it cannot be stored hashed like an API key.
    Column("webhook_secret", Text, nullable=False, server_default=""),
    Column("email", String(320), nullable=False, server_default=""),
    Column("active", Boolean, nullable=False),
)

# Referrals known from referral_received, so later case events reach the right agency.
referral_refs = Table(
    "referral_refs", metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("agency_id", String(36), nullable=False),
    Column("county", String(64), nullable=False),
    Column("agency_reference", String(64), nullable=False, server_default=""),
    Column("case_id", String(36)),
)
Index("ix_referral_refs_case", referral_refs.c.case_id)

# Meetings from the scheduling service's events, with who to remind; reminders go from here.
meetings = Table(
    "meetings", metadata,
    Column("meeting_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False),
    Column("county", String(64), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("venue_name", Text, nullable=False, server_default=""),
    Column("venue_address", Text, nullable=False, server_default=""),
    Column("participant_ids", Text, nullable=False),     # JSON list
    Column("facilitator_ids", Text, nullable=False),     # JSON list
    Column("status", String(12), nullable=False),        # scheduled, cancelled
    Column("sequence", Integer, nullable=False),
    Column("reminders_done", Text, nullable=False, server_default="[]"),   # JSON list of offsets in hours
    Column("next_reminder_at", DateTime(timezone=True)),   # when the next reminder is due; none left: null
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_meetings_next_reminder", meetings.c.next_reminder_at)
