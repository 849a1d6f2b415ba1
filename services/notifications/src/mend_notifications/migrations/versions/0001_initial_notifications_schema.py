"""initial notifications schema: messages and their delivery, templates, contact preferences,
releases, staff and referrer contacts, referral and meeting projections, with the platform's
outbox, processed events and audit log

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


def upgrade() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
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
    op.create_table('contact_preferences',
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('participant_id', sa.String(length=36), nullable=False),
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('channels', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=False),
    sa.Column('quiet_start', sa.String(length=5), server_default='', nullable=False),
    sa.Column('quiet_end', sa.String(length=5), server_default='', nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('case_id', 'participant_id', name='pk_contact_preferences')
    )
    op.create_table('meetings',
    sa.Column('meeting_id', sa.String(length=36), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('venue_name', sa.Text(), server_default='', nullable=False),
    sa.Column('venue_address', sa.Text(), server_default='', nullable=False),
    sa.Column('participant_ids', sa.Text(), nullable=False),
    sa.Column('facilitator_ids', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('reminders_done', sa.Text(), server_default='[]', nullable=False),
    sa.Column('next_reminder_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('meeting_id')
    )
    op.create_index('ix_meetings_next_reminder', 'meetings', ['next_reminder_at'], unique=False)
    op.create_table('messages',
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('dedupe_key', sa.String(length=300), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('case_id', sa.String(length=36), server_default='', nullable=False),
    sa.Column('message_type', sa.String(length=40), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('recipient_kind', sa.String(length=20), nullable=False),
    sa.Column('recipient_id', sa.String(length=200), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=False),
    sa.Column('template_version', sa.Integer(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('attachments', sa.Text(), server_default='[]', nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), server_default='', nullable=False),
    sa.Column('provider_ref', sa.String(length=200), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('message_id'),
    sa.UniqueConstraint('dedupe_key')
    )
    op.create_index('ix_messages_case', 'messages', ['county', 'case_id', 'created_at'], unique=False)
    op.create_index('ix_messages_due', 'messages', ['status', 'next_attempt_at'], unique=False)
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
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
    op.create_table('referral_refs',
    sa.Column('referral_id', sa.String(length=36), nullable=False),
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('agency_reference', sa.String(length=64), server_default='', nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=True),
    sa.PrimaryKeyConstraint('referral_id')
    )
    op.create_index('ix_referral_refs_case', 'referral_refs', ['case_id'], unique=False)
    op.create_table('referrer_contacts',
    sa.Column('agency_id', sa.String(length=36), nullable=False),
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('webhook_url', sa.Text(), server_default='', nullable=False),
    sa.Column('webhook_secret', sa.Text(), server_default='', nullable=False),
    sa.Column('email', sa.String(length=320), server_default='', nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('agency_id')
    )
    op.create_table('releases',
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('about_participant_id', sa.String(length=36), nullable=False),
    sa.Column('to_participant_id', sa.String(length=36), nullable=False),
    sa.Column('field', sa.String(length=30), nullable=False),
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('released_by', sa.String(length=200), nullable=False),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('case_id', 'about_participant_id', 'to_participant_id', 'field', name='pk_releases')
    )
    op.create_table('staff_contacts',
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('roles', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('county', 'subject', name='pk_staff_contacts')
    )
    op.create_table('templates',
    sa.Column('message_type', sa.String(length=40), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('language', sa.String(length=5), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('saved_by', sa.String(length=200), nullable=False),
    sa.Column('saved_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('message_type', 'channel', 'language', 'version', name='pk_templates')
    )
    # Outbox rows wake the relay from inside PostgreSQL (a no-op on SQLite).
    create_outbox_notify_trigger_v1(op, "notifications")


def downgrade() -> None:
    drop_outbox_notify_trigger_v1(op, "notifications")
    op.drop_table('templates')
    op.drop_table('staff_contacts')
    op.drop_table('releases')
    op.drop_table('referrer_contacts')
    op.drop_table('referral_refs')
    op.drop_table('processed_events')
    op.drop_table('outbox')
    op.drop_table('messages')
    op.drop_table('meetings')
    op.drop_table('contact_preferences')
    op.drop_table('audit_log')
