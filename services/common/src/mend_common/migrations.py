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
