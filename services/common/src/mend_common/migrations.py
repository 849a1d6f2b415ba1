"""Alembic, per service: each service keeps its own migrations and its own version table, in
its own PostgreSQL schema (or its own SQLite file)."""
from __future__ import annotations

import logging
import zlib

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text

from .db import Database
from .registry import ServiceDefinition

log = logging.getLogger(__name__)


def alembic_config(definition: ServiceDefinition, database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(definition.migrations_dir))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["mend_service"] = definition
    return cfg


def upgrade(definition: ServiceDefinition, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(definition, database_url), revision)


def run_env(context, target_metadata: MetaData, schema: str) -> None:
    """Body of every service's migrations/env.py (online mode only: we migrate live databases)."""
    url = context.config.get_main_option("sqlalchemy.url")
    db = Database(url, schema, pool_size=1)
    try:
        with db.engine.connect() as conn:
            if db.is_postgres:
                # One migrator at a time per service, even if several pods start together.
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": zlib.crc32(f"mend:{schema}".encode())})
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                conn.commit()
            context.configure(connection=conn, target_metadata=target_metadata,
                              version_table_schema=schema if db.is_postgres else None,
                              compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
            if db.is_postgres:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": zlib.crc32(f"mend:{schema}".encode())})
                conn.commit()
    finally:
        db.dispose()


def create_outbox_notify_trigger_v1(op, schema: str) -> None:
    """PostgreSQL: every statement that adds outbox rows wakes the relays (LISTEN
    mend_outbox_<schema>) from inside the database, so writers spend no round trip on NOTIFY.
    SQLite has no NOTIFY: its relay polls."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""
        CREATE OR REPLACE FUNCTION "{schema}".notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('mend_outbox_' || TG_TABLE_SCHEMA, '');
            RETURN NULL;
        END $$""")
    op.execute(f'CREATE TRIGGER outbox_notify AFTER INSERT ON "{schema}".outbox '
               f'FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".notify_outbox()')


def drop_outbox_notify_trigger_v1(op, schema: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f'DROP TRIGGER IF EXISTS outbox_notify ON "{schema}".outbox')
    op.execute(f'DROP FUNCTION IF EXISTS "{schema}".notify_outbox()')
