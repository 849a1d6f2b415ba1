from sqlalchemy import (Boolean, Column, Date, DateTime, Float, Index, Integer, MetaData, PrimaryKeyConstraint, String,
                        Table, Text)

from mend_common.tables import platform_tables

metadata = MetaData()
platform = platform_tables(metadata)

facilitators = Table(
    "facilitators", metadata,
    Column("facilitator_id", String(36), primary_key=True),
    Column("county", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("home_lat", Float, nullable=False),
    Column("home_lon", Float, nullable=False),
    Column("districts", Text, nullable=False),          # JSON list
    Column("availability", Text, nullable=False),       # JSON list of {weekday, start, end}
    Column("max_minutes_per_week", Integer, nullable=False),
    Column("vetting_date", Date, nullable=False),
    Column("vetting_expires_on", Date, nullable=False),
    Column("training_level", String(20), nullable=False),
    Column("accreditations", Text, nullable=False),     # JSON list
    Column("languages", Text, nullable=False),          # JSON list
    Column("conflicts", Text, nullable=False),          # JSON list of case or participant ids
    Column("absences", Text, nullable=False),           # JSON list of {starts_at, ends_at, reason}
    Column("active", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(200), nullable=False),
)
Index("ix_facilitators_county", facilitators.c.county, facilitators.c.name)

venues = Table(
    "venues", metadata,
    Column("venue_id", String(36), primary_key=True),
    Column("county", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("address", Text, nullable=False),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("neutral", Boolean, nullable=False),
    Column("accessibility", Text, nullable=False),      # JSON list
    Column("separate_waiting_rooms", Boolean, nullable=False),
    Column("opening", Text, nullable=False),            # JSON list of {weekday, start, end}
    Column("cost_per_hour_pence", Integer, nullable=False),
    Column("refreshments", Text, nullable=False),
    Column("travel_notes", Text, nullable=False),
    Column("district", String(100), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(200), nullable=False),
)
Index("ix_venues_county", venues.c.county, venues.c.name)

rooms = Table(
    "rooms", metadata,
    Column("room_id", String(36), primary_key=True),
    Column("venue_id", String(36), nullable=False),
    Column("county", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("capacity", Integer, nullable=False),
    Column("waiting_room", Boolean, nullable=False),
    Column("active", Boolean, nullable=False),
)
Index("ix_rooms_venue", rooms.c.venue_id)

meeting_requests = Table(
    "meeting_requests", metadata,
    Column("request_id", String(36), primary_key=True),
    Column("county", String(64), nullable=False),
    Column("case_id", String(36), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("earliest", DateTime(timezone=True), nullable=False),
    Column("latest", DateTime(timezone=True), nullable=False),
    Column("needs", Text, nullable=False),              # JSON: participants, facilitators, language, access, risk
    Column("status", String(20), nullable=False),       # open | booked | withdrawn
    Column("meeting_id", String(36)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("withdrawn_reason", Text),
)
Index("ix_meeting_requests_open", meeting_requests.c.county, meeting_requests.c.status, meeting_requests.c.latest)
Index("ix_meeting_requests_case", meeting_requests.c.case_id)

meetings = Table(
    "meetings", metadata,
    Column("meeting_id", String(36), primary_key=True),
    Column("county", String(64), nullable=False),
    Column("case_id", String(36), nullable=False),
    Column("request_id", String(36), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("venue_id", String(36), nullable=False),     # empty: at the participant's home
    Column("room_id", String(36), nullable=False),
    Column("participant_ids", Text, nullable=False),    # JSON list
    Column("facilitator_ids", Text, nullable=False),    # JSON list
    Column("plan_measures", Text, nullable=False),      # JSON list, as shown to the safety gate
    Column("status", String(20), nullable=False),       # scheduled | cancelled
    Column("sequence", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_meetings_county_start", meetings.c.county, meetings.c.starts_at)
Index("ix_meetings_case", meetings.c.case_id)
Index("ix_meetings_room", meetings.c.room_id, meetings.c.starts_at)

# One row per facilitator of a live meeting: what the double-booking check and calendars read.
meeting_facilitators = Table(
    "meeting_facilitators", metadata,
    Column("meeting_id", String(36), nullable=False),
    Column("facilitator_id", String(36), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("meeting_id", "facilitator_id", name="pk_meeting_facilitators"),
)
Index("ix_meeting_facilitators_time", meeting_facilitators.c.facilitator_id, meeting_facilitators.c.starts_at)

# Every booking, move and cancellation: never rewritten.
meeting_history = Table(
    "meeting_history", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("meeting_id", String(36), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("by", String(200), nullable=False),
    Column("action", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("before", Text, nullable=False),             # JSON, {} for a new booking
    Column("after", Text, nullable=False),
)
Index("ix_meeting_history_meeting", meeting_history.c.meeting_id, meeting_history.c.id)

allocation_proposals = Table(
    "allocation_proposals", metadata,
    Column("proposal_id", String(36), primary_key=True),
    Column("county", String(64), nullable=False),
    Column("status", String(20), nullable=False),       # proposed | accepted
    Column("horizon_start", Date, nullable=False),
    Column("weeks", Integer, nullable=False),
    Column("placements", Text, nullable=False),         # JSON list
    Column("not_placed", Text, nullable=False),         # JSON list
    Column("report", Text, nullable=False),             # JSON
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("accepted_at", DateTime(timezone=True)),
    Column("accepted_by", String(200)),
)
Index("ix_allocation_proposals_county", allocation_proposals.c.county, allocation_proposals.c.created_at)
