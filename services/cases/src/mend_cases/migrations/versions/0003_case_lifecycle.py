"""case lifecycle: eligibility, consent, notes, allocation, outcome agreement, follow-up, closure,
Victims' Code clocks

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("cases") as t:
        t.add_column(sa.Column("offence_reported_date", sa.String(10)))
        t.add_column(sa.Column("seriousness", sa.String(20), nullable=False, server_default="standard"))
        t.add_column(sa.Column("eligibility", sa.Text()))
        t.add_column(sa.Column("intervention_kind", sa.String(30), nullable=False, server_default=""))
        t.add_column(sa.Column("no_agreement_reason", sa.Text(), nullable=False, server_default=""))
        t.add_column(sa.Column("follow_up", sa.Text()))
        t.add_column(sa.Column("closure", sa.Text()))
        t.add_column(sa.Column("closure_reason", sa.String(30)))
        t.add_column(sa.Column("closed_at", sa.DateTime(timezone=True)))
        t.add_column(sa.Column("retention_hold", sa.Boolean(), nullable=False, server_default="0"))
        t.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("case_participants") as t:
        t.add_column(sa.Column("consent_status", sa.String(20), nullable=False, server_default="not_requested"))
        t.add_column(sa.Column("consent_method", sa.String(30), nullable=False, server_default=""))
        t.add_column(sa.Column("consent_at", sa.DateTime(timezone=True)))
        t.add_column(sa.Column("information_offered_at", sa.DateTime(timezone=True)))
        t.add_column(sa.Column("support_referral_at", sa.DateTime(timezone=True)))
        t.add_column(sa.Column("process_stopped", sa.Boolean(), nullable=False, server_default="0"))
    op.create_table(
        "case_consents",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.case_id"), nullable=False),
        sa.Column("participant_id", sa.String(36), sa.ForeignKey("case_participants.participant_id"), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("method", sa.String(30), nullable=False, server_default=""),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
    )
    op.create_index("ix_case_consents_case_id", "case_consents", ["case_id"])
    op.create_table(
        "case_notes",
        sa.Column("note_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.case_id"), nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("corrects_note_id", sa.String(36), sa.ForeignKey("case_notes.note_id")),
    )
    op.create_index("ix_case_notes_case_written", "case_notes", ["case_id", "written_at"])
    op.create_table(
        "case_facilitators",
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.case_id"), nullable=False),
        sa.Column("facilitator_id", sa.String(64), nullable=False),
        sa.Column("lead", sa.Boolean(), nullable=False),
        sa.Column("allocated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("allocated_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("case_id", "facilitator_id", name="pk_case_facilitators"),
    )
    op.create_index("ix_case_facilitators_facilitator", "case_facilitators", ["facilitator_id", "case_id"])
    op.create_table(
        "case_outcome_items",
        sa.Column("item_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.case_id"), nullable=False),
        sa.Column("county", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner_participant_id", sa.String(36), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("overdue_flagged_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_case_outcome_items_case_id", "case_outcome_items", ["case_id"])
    pending = sa.text("status = 'pending' AND overdue_flagged_at IS NULL")
    op.create_index("ix_outcome_items_overdue", "case_outcome_items", ["due_on"],
                    postgresql_where=pending, sqlite_where=pending)
    op.create_table(
        "case_clocks",
        sa.Column("clock_id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), sa.ForeignKey("cases.case_id"), nullable=False),
        sa.Column("county", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("participant_id", sa.String(36), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("basis", sa.String(60), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("met_at", sa.DateTime(timezone=True)),
        sa.Column("breached_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_case_clocks_case_id", "case_clocks", ["case_id"])
    unmet = sa.text("met_at IS NULL")
    op.create_index("ix_case_clocks_open_due", "case_clocks", ["county", "due_on"],
                    postgresql_where=unmet, sqlite_where=unmet)


def downgrade() -> None:
    for table in ("case_clocks", "case_outcome_items", "case_facilitators", "case_notes", "case_consents"):
        op.drop_table(table)
    with op.batch_alter_table("case_participants") as t:
        for column in ("consent_status", "consent_method", "consent_at", "information_offered_at",
                       "support_referral_at", "process_stopped"):
            t.drop_column(column)
    with op.batch_alter_table("cases") as t:
        for column in ("offence_reported_date", "seriousness", "eligibility", "intervention_kind",
                       "no_agreement_reason", "follow_up", "closure", "closure_reason", "closed_at",
                       "retention_hold", "version"):
            t.drop_column(column)
