"""case search across counties: an index on (opened_at, case_id), the search's own order

A search over several counties at once (a manager's) filters on county IN (...) and orders by
(opened_at, case_id) newest first; without this index PostgreSQL reads the whole cases table
and sorts it. Walking this index backwards it stops after the page's rows instead.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cases_opened_case", "cases", ["opened_at", "case_id"])


def downgrade() -> None:
    op.drop_index("ix_cases_opened_case", table_name="cases")
