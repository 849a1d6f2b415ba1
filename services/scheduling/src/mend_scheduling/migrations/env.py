from alembic import context

from mend_common.migrations import run_env
from mend_scheduling.adapters.tables import metadata

run_env(context, metadata, schema="scheduling")
