"""initial scheduling schema: facilitators, venues and rooms, meeting requests, meetings with
their facilitators and history, allocation proposals; the platform's outbox, processed events and
audit log

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
    op.create_table('allocation_proposals',
    sa.Column('proposal_id', sa.String(length=36), nullable=False),
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('horizon_start', sa.Date(), nullable=False),
    sa.Column('weeks', sa.Integer(), nullable=False),
    sa.Column('placements', sa.Text(), nullable=False),
    sa.Column('not_placed', sa.Text(), nullable=False),
    sa.Column('report', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('accepted_by', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('proposal_id')
    )
    op.create_index('ix_allocation_proposals_county', 'allocation_proposals', ['county', 'created_at'], unique=False)
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
    op.create_table('facilitators',
    sa.Column('facilitator_id', sa.String(length=36), nullable=False),
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('home_lat', sa.Float(), nullable=False),
    sa.Column('home_lon', sa.Float(), nullable=False),
    sa.Column('districts', sa.Text(), nullable=False),
    sa.Column('availability', sa.Text(), nullable=False),
    sa.Column('max_minutes_per_week', sa.Integer(), nullable=False),
    sa.Column('vetting_date', sa.Date(), nullable=False),
    sa.Column('vetting_expires_on', sa.Date(), nullable=False),
    sa.Column('training_level', sa.String(length=20), nullable=False),
    sa.Column('accreditations', sa.Text(), nullable=False),
    sa.Column('languages', sa.Text(), nullable=False),
    sa.Column('conflicts', sa.Text(), nullable=False),
    sa.Column('absences', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('facilitator_id')
    )
    op.create_index('ix_facilitators_county', 'facilitators', ['county', 'name'], unique=False)
    op.create_table('meeting_facilitators',
    sa.Column('meeting_id', sa.String(length=36), nullable=False),
    sa.Column('facilitator_id', sa.String(length=36), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('meeting_id', 'facilitator_id', name='pk_meeting_facilitators')
    )
    op.create_index('ix_meeting_facilitators_time', 'meeting_facilitators', ['facilitator_id', 'starts_at'], unique=False)
    op.create_table('meeting_history',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('meeting_id', sa.String(length=36), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('by', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('before', sa.Text(), nullable=False),
    sa.Column('after', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_meeting_history_meeting', 'meeting_history', ['meeting_id', 'id'], unique=False)
    op.create_table('meeting_requests',
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('earliest', sa.DateTime(timezone=True), nullable=False),
    sa.Column('latest', sa.DateTime(timezone=True), nullable=False),
    sa.Column('needs', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('meeting_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('withdrawn_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('request_id')
    )
    op.create_index('ix_meeting_requests_case', 'meeting_requests', ['case_id'], unique=False)
    op.create_index('ix_meeting_requests_open', 'meeting_requests', ['county', 'status', 'latest'], unique=False)
    op.create_table('meetings',
    sa.Column('meeting_id', sa.String(length=36), nullable=False),
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('case_id', sa.String(length=36), nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('venue_id', sa.String(length=36), nullable=False),
    sa.Column('room_id', sa.String(length=36), nullable=False),
    sa.Column('participant_ids', sa.Text(), nullable=False),
    sa.Column('facilitator_ids', sa.Text(), nullable=False),
    sa.Column('plan_measures', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('meeting_id')
    )
    op.create_index('ix_meetings_case', 'meetings', ['case_id'], unique=False)
    op.create_index('ix_meetings_county_start', 'meetings', ['county', 'starts_at'], unique=False)
    op.create_index('ix_meetings_room', 'meetings', ['room_id', 'starts_at'], unique=False)
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
    op.create_table('rooms',
    sa.Column('room_id', sa.String(length=36), nullable=False),
    sa.Column('venue_id', sa.String(length=36), nullable=False),
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('waiting_room', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('room_id')
    )
    op.create_index('ix_rooms_venue', 'rooms', ['venue_id'], unique=False)
    op.create_table('venues',
    sa.Column('venue_id', sa.String(length=36), nullable=False),
    sa.Column('county', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('neutral', sa.Boolean(), nullable=False),
    sa.Column('accessibility', sa.Text(), nullable=False),
    sa.Column('separate_waiting_rooms', sa.Boolean(), nullable=False),
    sa.Column('opening', sa.Text(), nullable=False),
    sa.Column('cost_per_hour_pence', sa.Integer(), nullable=False),
    sa.Column('refreshments', sa.Text(), nullable=False),
    sa.Column('travel_notes', sa.Text(), nullable=False),
    sa.Column('district', sa.String(length=100), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('venue_id')
    )
    op.create_index('ix_venues_county', 'venues', ['county', 'name'], unique=False)
    # Outbox rows wake the relay from inside PostgreSQL (a no-op on SQLite).
    create_outbox_notify_trigger_v1(op, "scheduling")


def downgrade() -> None:
    drop_outbox_notify_trigger_v1(op, "scheduling")
    op.drop_index('ix_venues_county', table_name='venues')
    op.drop_table('venues')
    op.drop_index('ix_rooms_venue', table_name='rooms')
    op.drop_table('rooms')
    op.drop_table('processed_events')
    op.drop_index('ix_outbox_available', table_name='outbox')
    op.drop_table('outbox')
    op.drop_index('ix_meetings_room', table_name='meetings')
    op.drop_index('ix_meetings_county_start', table_name='meetings')
    op.drop_index('ix_meetings_case', table_name='meetings')
    op.drop_table('meetings')
    op.drop_index('ix_meeting_requests_open', table_name='meeting_requests')
    op.drop_index('ix_meeting_requests_case', table_name='meeting_requests')
    op.drop_table('meeting_requests')
    op.drop_index('ix_meeting_history_meeting', table_name='meeting_history')
    op.drop_table('meeting_history')
    op.drop_index('ix_meeting_facilitators_time', table_name='meeting_facilitators')
    op.drop_table('meeting_facilitators')
    op.drop_index('ix_facilitators_county', table_name='facilitators')
    op.drop_table('facilitators')
    op.drop_index('ix_audit_resource', table_name='audit_log')
    op.drop_index('ix_audit_at', table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_index('ix_allocation_proposals_county', table_name='allocation_proposals')
    op.drop_table('allocation_proposals')
