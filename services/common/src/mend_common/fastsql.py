"""Fixed SQL statements run straight on the database driver, inside the caller's SQLAlchemy
transaction. Hot paths (intake, outbox, event handling) use these: building and executing a
SQLAlchemy statement costs several times the driver's own work per call, while psycopg
prepares a repeated statement on the server after a few runs."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

_NAMED = re.compile(r"(?<!:):(\w+)")


def _sqlite_value(value: Any) -> Any:
    # Store datetimes the way SQLAlchemy's SQLite DateTime does (naive UTC, ISO with a space),
    # so rows written here read back through SQLAlchemy unchanged.
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


class Statement:
    """One statement written with :name placeholders, compiled once per driver style."""

    def __init__(self, sql: str):
        self.sql = " ".join(sql.split())
        self.pyformat = _NAMED.sub(r"%(\1)s", self.sql)   # psycopg

    def _cursor(self, conn: Connection):
        return conn.connection.driver_connection.cursor()

    def _is_sqlite(self, conn: Connection) -> bool:
        return conn.dialect.name == "sqlite"

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple]:
        """Run it; returns the rows it produced (for RETURNING or SELECT), else []."""
        cur = self._cursor(conn)
        try:
            if self._is_sqlite(conn):
                cur.execute(self.sql, {k: _sqlite_value(v) for k, v in params.items()})
            else:
                cur.execute(self.pyformat, params)
            return cur.fetchall() if cur.description else []
        except conn.dialect.loaded_dbapi.Error as exc:
            raise self._translate(conn, exc, params, cur) from exc
        finally:
            cur.close()

    def _translate(self, conn: Connection, exc: Exception, params, cursor) -> DBAPIError:
        """The same exception SQLAlchemy would raise (IntegrityError, OperationalError, ...); a
        lost connection is invalidated so the pool does not hand it out again."""
        disconnected = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
        if disconnected:
            conn.invalidate(exc)
        return DBAPIError.instance(self.sql, params, exc, conn.dialect.loaded_dbapi.Error,
                                   connection_invalidated=disconnected, dialect=conn.dialect)


def insert(table: str, columns: Iterable[str], suffix: str = "") -> Statement:
    cols = list(columns)
    return Statement(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)}) {suffix}")
