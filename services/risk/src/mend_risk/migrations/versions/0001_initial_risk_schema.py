"""initial risk schema: assessments, with the platform's outbox, processed events and audit log

Revision ID: 0001
Revises:
"""
from alembic import op
import sqlalchemy as sa

from mend_common.migrations import create_outbox_notify_trigger_v1, drop_outbox_notify_trigger_v1

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('principal', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('resource_type', sa.String(length=50), nullable=False),
    sa.Column('resource_id', sa.String(length=64), nullable=True),
    sa.Column('county', sa.String(length=64), nullable=True),
    sa.Column('correlation_id', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_audit_at', 'audit_log', ['at'], unique=False)
    op.create_index('ix_audit_resource', 'audit_log', ['resource_type', 'resource_id'], unique=False)
    op.create_table('outbox',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('event_type', sa.String(length=100), nullable=False),
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('correlation_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    op.create_index('ix_outbox_available', 'outbox', ['available_at', 'id'], unique=False)
    op.create_table('processed_events',
    sa.Column('consumer', sa.String(length=200), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'event_id', name='pk_processed_events')
    )
    op.create_table('risk_assessments',
    sa.Column('assessment_id', sa.String(length=36), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('participant_id', sa.String(length=36), nullable=False),
    sa.Column('stage', sa.String(length=40), nullable=False),
    sa.Column('assessor', sa.String(length=200), nullable=False),
    sa.Column('assessed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('factors', sa.Text(), nullable=False),
    sa.Column('level', sa.String(length=20), nullable=False),
    sa.Column('measures', sa.Text(), nullable=False),
    sa.Column('decision', sa.String(length=20), nullable=False),
    sa.Column('needs_approval', sa.Boolean(), nullable=False),
    sa.Column('reasons', sa.Text(), nullable=False),
    sa.Column('rule_version', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('approved_by', sa.String(length=200), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rejected_by', sa.String(length=200), nullable=True),
    sa.Column('rejected_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rejection_reason', sa.Text(), nullable=True),
    sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expiry_reason', sa.Text(), nullable=True),
    sa.Column('supersedes', sa.String(length=36), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('assessment_id')
    )
    op.create_index('ix_risk_assessments_case', 'risk_assessments', ['county', 'case_id', 'assessed_at'],
                    unique=False)
    op.create_index('ix_risk_assessments_in_force', 'risk_assessments', ['status', 'expires_at'], unique=False)
    # Outbox rows wake the relay from inside PostgreSQL (a no-op on SQLite).
    create_outbox_notify_trigger_v1(op, "risk")


def downgrade() -> None:
    drop_outbox_notify_trigger_v1(op, "risk")
    op.drop_index('ix_risk_assessments_in_force', table_name='risk_assessments')
    op.drop_index('ix_risk_assessments_case', table_name='risk_assessments')
    op.drop_table('risk_assessments')
    op.drop_table('processed_events')
    op.drop_index('ix_outbox_available', table_name='outbox')
    op.drop_table('outbox')
    op.drop_index('ix_audit_resource', table_name='audit_log')
    op.drop_index('ix_audit_at', table_name='audit_log')
    op.drop_table('audit_log')
