from sqlalchemy import (Boolean, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text)

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
)
Index("ix_cases_county_stage_opened", cases.c.county, cases.c.stage, cases.c.opened_at)
Index("ix_cases_county_opened", cases.c.county, cases.c.opened_at)

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
