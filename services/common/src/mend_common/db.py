"""SQLAlchemy 2 database access for both process kinds (PostgreSQL in production, SQLite first run).

Each service owns a PostgreSQL schema (selected with search_path, so SQL stays unqualified) or,
on SQLite, its own file.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url


def normalise_url(url: str) -> str:
    """Accept the usual postgresql:// spelling and use psycopg 3 for it."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class Database:
    def __init__(self, url: str, schema: str, *, pool_size: int = 20, statement_timeout_ms: int = 30_000):
        self.url = normalise_url(url)
        self.schema = schema
        self.is_postgres = self.url.startswith("postgresql")
        # Set after a commit that added outbox rows, so a relay in the same process wakes at once.
        self.outbox_written = threading.Event()
        self._autocommit_engine: Engine | None = None
        self._pool_size = pool_size
        self._connect_args = {
            "options": f"-c search_path={schema} -c statement_timeout={statement_timeout_ms}",
            "connect_timeout": 5,
            "application_name": f"mend-{schema}",
        }
        if self.is_postgres:
            self.engine: Engine = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=pool_size,
                # No ping per checkout (a round trip per transaction): a connection broken by a
                # database restart fails one call, and SQLAlchemy then discards the whole pool.
                pool_pre_ping=False,
                pool_timeout=10,
                connect_args=self._connect_args,
            )
        else:
            path = make_url(self.url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size,
                connect_args={"check_same_thread": False, "timeout": 30},
            )
            _make_sqlite_transactional(self.engine)

    @property
    def autocommit_engine(self) -> Engine:
        """PostgreSQL connections without an open transaction, for single-statement writes
        (WriteChain): no BEGIN and COMMIT round trips. Created on first use."""
        if not self.is_postgres:
            raise RuntimeError("autocommit writes are for PostgreSQL; SQLite chains use a transaction")
        if self._autocommit_engine is None:
            self._autocommit_engine = create_engine(
                self.url, isolation_level="AUTOCOMMIT", pool_size=self._pool_size, max_overflow=self._pool_size,
                pool_timeout=10, connect_args=self._connect_args)
        return self._autocommit_engine

    @property
    def notify_channel(self) -> str:
        return f"mend_outbox_{self.schema}"

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
        if self._autocommit_engine is not None:
            self._autocommit_engine.dispose()


def _make_sqlite_transactional(engine: Engine) -> None:
    """pysqlite begins transactions lazily and upgrades read locks to write locks, which
    deadlocks between processes; take the write lock up front instead (BEGIN IMMEDIATE)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
