from sqlalchemy import (Boolean, Column, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint)

from mend_common.tables import BigId, platform_tables

metadata = MetaData()
platform = platform_tables(metadata)

agencies = Table(
    "agencies", metadata,
    Column("agency_id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("county", String(64), nullable=False, index=True),
    Column("kind", String(40), nullable=False),
    Column("active", Boolean, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("county", "name", name="uq_agency_county_name"),
)

api_keys = Table(
    "api_keys", metadata,
    Column("key_id", String(32), primary_key=True),
    Column("agency_id", String(36), ForeignKey("agencies.agency_id"), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False),
    Column("label", String(200), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)

referrals = Table(
    "referrals", metadata,
    Column("referral_id", String(36), primary_key=True),
    Column("agency_id", String(36), nullable=False),
    Column("county", String(64), nullable=False),
    Column("agency_reference", String(64), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(20), nullable=False),
    Column("case_id", String(36)),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("draft", Text, nullable=False),          # the referral as submitted, JSON
    UniqueConstraint("agency_id", "request_id", name="uq_referral_request"),
    UniqueConstraint("agency_id", "agency_reference", name="uq_referral_agency_reference"),
)
Index("ix_referrals_agency_received", referrals.c.agency_id, referrals.c.received_at)
Index("ix_referrals_county_received", referrals.c.county, referrals.c.received_at)

# Changes after receipt (the receipt itself is referrals.received_at).
referral_status_history = Table(
    "referral_status_history", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("referral_id", String(36), ForeignKey("referrals.referral_id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
)
