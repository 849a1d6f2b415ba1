from sqlalchemy import Boolean, Column, DateTime, Index, Integer, MetaData, String, Table, Text

from mend_common.tables import platform_tables

metadata = MetaData()
platform = platform_tables(metadata)

assessments = Table(
    "risk_assessments", metadata,
    Column("assessment_id", String(36), primary_key=True),
    Column("case_id", String(36), nullable=False),
    Column("county", String(64), nullable=False),
    Column("participant_id", String(36), nullable=False),
    Column("stage", String(40), nullable=False),
    Column("assessor", String(200), nullable=False),
    Column("assessed_at", DateTime(timezone=True), nullable=False),
    Column("factors", Text, nullable=False),            # JSON list of {kind, severity, source, notes}
    Column("level", String(20), nullable=False),
    Column("measures", Text, nullable=False),           # JSON list
    Column("decision", String(20), nullable=False),
    Column("needs_approval", Boolean, nullable=False),
    Column("reasons", Text, nullable=False),            # JSON list of {conclusion, rule_id, text}
    Column("rule_version", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("approved_by", String(200)),
    Column("approved_at", DateTime(timezone=True)),
    Column("rejected_by", String(200)),
    Column("rejected_at", DateTime(timezone=True)),
    Column("rejection_reason", Text),
    Column("expired_at", DateTime(timezone=True)),
    Column("expiry_reason", Text),
    Column("supersedes", String(36)),
    Column("version", Integer, nullable=False),
)
# A case's assessments, newest first (the gate and case clearance read these).
Index("ix_risk_assessments_case", assessments.c.county, assessments.c.case_id, assessments.c.assessed_at)
# The expiry sweep: assessments still in force, by when they run out.
Index("ix_risk_assessments_in_force", assessments.c.status, assessments.c.expires_at)
