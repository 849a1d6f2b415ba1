from sqlalchemy import (Boolean, Column, Date, DateTime, ForeignKey, Index, Integer, MetaData, PrimaryKeyConstraint,
                        String, Table, Text)

from mend_common.tables import BigId, platform_tables

metadata = MetaData()
platform = platform_tables(metadata)

cases = Table(
    "cases", metadata,
    Column("case_id", String(36), primary_key=True),
    Column("referral_id", String(36), nullable=False, unique=True),   # one case per referral
    Column("county", String(64), nullable=False),
    Column("stage", String(40), nullable=False),
    Column("initiated_by", String(20), nullable=False),
    Column("offence_type", String(120), nullable=False),
    Column("offence_category", String(60), nullable=False),
    Column("offence_date", String(10), nullable=False),
    Column("offence_flags", Text, nullable=False, server_default="[]"),
    Column("referring_agency_id", String(36), nullable=False),
    Column("agency_reference", String(64), nullable=False),
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("offence_reported_date", String(10)),
    Column("seriousness", String(20), nullable=False, server_default="standard"),
    Column("eligibility", Text),                                     # JSON, once decided
    Column("intervention_kind", String(30), nullable=False, server_default=""),
    Column("no_agreement_reason", Text, nullable=False, server_default=""),
    Column("follow_up", Text),                                       # JSON, once recorded
    Column("closure", Text),                                         # JSON, once closed
    Column("closure_reason", String(30)),
    Column("closed_at", DateTime(timezone=True)),
    Column("retention_hold", Boolean, nullable=False, server_default="0"),
    Column("version", Integer, nullable=False, server_default="0"),  # optimistic check on every save
)
Index("ix_cases_county_stage_opened", cases.c.county, cases.c.stage, cases.c.opened_at)
Index("ix_cases_county_opened", cases.c.county, cases.c.opened_at)
# Newest first across several counties (a manager's search): the search's own order, so the scan
# stops after a page instead of sorting every case of those counties.
Index("ix_cases_opened_case", cases.c.opened_at, cases.c.case_id)

case_participants = Table(
    "case_participants", metadata,
    Column("participant_id", String(36), primary_key=True),
    Column("case_id", String(36), ForeignKey("cases.case_id"), nullable=False, index=True),
    Column("role", String(30), nullable=False),
    Column("given_name", String(100), nullable=False, server_default=""),
    Column("family_name", String(100), nullable=False, server_default=""),
    Column("date_of_birth", String(10)),
    Column("age", Integer),
    Column("is_youth", Boolean, nullable=False),
    Column("vulnerabilities", Text, nullable=False, server_default="[]"),
    Column("consent_to_contact", Boolean, nullable=False),
    Column("preferred_channel", String(20), nullable=False, server_default=""),
    Column("contact", Text, nullable=False, server_default="{}"),
    Column("consent_status", String(20), nullable=False, server_default="not_requested"),
    Column("consent_method", String(30), nullable=False, server_default=""),
    Column("consent_at", DateTime(timezone=True)),
    Column("information_offered_at", DateTime(timezone=True)),
    Column("support_referral_at", DateTime(timezone=True)),
    Column("process_stopped", Boolean, nullable=False, server_default="0"),
)

case_stage_history = Table(
    "case_stage_history", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("case_id", String(36), ForeignKey("cases.case_id"), nullable=False, index=True),
    Column("stage", String(40), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("by", String(200), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
)

case_consents = Table(
    "case_consents", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("case_id", String(36), ForeignKey("cases.case_id"), nullable=False, index=True),
    Column("participant_id", String(36), ForeignKey("case_participants.participant_id"), nullable=False),
    Column("status", String(20), nullable=False),
    Column("method", String(30), nullable=False, server_default=""),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(200), nullable=False),
    Column("note", Text, nullable=False, server_default=""),
)

# Append-only: rows are inserted, never updated or deleted; a correction is a new row.
case_notes = Table(
    "case_notes", metadata,
    Column("note_id", String(36), primary_key=True),
    Column("case_id", String(36), ForeignKey("cases.case_id"), nullable=False),
    Column("author", String(200), nullable=False),
    Column("written_at", DateTime(timezone=True), nullable=False),
    Column("body", Text, nullable=False),
    Column("corrects_note_id", String(36), ForeignKey("case_notes.note_id")),
)
Index("ix_case_notes_case_written", case_notes.c.case_id, case_notes.c.written_at)

case_facilitators = Table(
    "case_facilitators", metadata,
    Column("case_id", String(36), ForeignKey("cases.case_id"), nullable=False),
    Column("facilitator_id", String(64), nullable=False),
    Column("lead", Boolean, nullable=False),
    Column("allocated_at", DateTime(timezone=True), nullable=False),
    Column("allocated_by", String(200), nullable=False),
    PrimaryKeyConstraint("case_id", "facilitator_id", name="pk_case_facilitators"),
)
Index("ix_case_facilitators_facilitator", case_facilitators.c.facilitator_id, case_facilitators.c.case_id)

case_outcome_items = Table(
    "case_outcome_items", metadata,
    Column("item_id", String(36), primary_key=True),
    Column("case_id", String(36), ForeignKey("cases.case_id"), nullable=False, index=True),
    Column("county", String(64), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("description", Text, nullable=False),
    Column("owner_participant_id", String(36), nullable=False),
    Column("due_on", Date, nullable=False),
    Column("status", String(20), nullable=False),
    Column("recorded_by", String(200), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("overdue_flagged_at", DateTime(timezone=True)),
)
# The overdue sweep reads only pending, not yet flagged items.
Index("ix_outcome_items_overdue", case_outcome_items.c.due_on,
      postgresql_where=(case_outcome_items.c.status == "pending") & case_outcome_items.c.overdue_flagged_at.is_(None),
      sqlite_where=(case_outcome_items.c.status == "pending") & case_outcome_items.c.overdue_flagged_at.is_(None))

case_clocks = Table(
    "case_clocks", metadata,
    Column("clock_id", String(36), primary_key=True),
    Column("case_id", String(36), ForeignKey("cases.case_id"), nullable=False, index=True),
    Column("county", String(64), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("participant_id", String(36), nullable=False),
    Column("started_on", Date, nullable=False),
    Column("basis", String(60), nullable=False),
    Column("due_on", Date, nullable=False),
    Column("met_at", DateTime(timezone=True)),
    Column("breached_at", DateTime(timezone=True)),
)
# Searching for cases with a clock running out, and the breach sweep: only unmet clocks.
Index("ix_case_clocks_open_due", case_clocks.c.county, case_clocks.c.due_on,
      postgresql_where=case_clocks.c.met_at.is_(None), sqlite_where=case_clocks.c.met_at.is_(None))
