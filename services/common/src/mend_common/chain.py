"""A unit of work whose writes are deferred to commit and then sent together.

On PostgreSQL the writes become one statement of data-modifying CTEs, run in autocommit: one
round trip, atomic because a single statement is its own transaction. (Against a transaction of
separate statements this cut the CPU of opening a case by more than half: every round trip costs
a green-select wake-up under eventlet, plus BEGIN and COMMIT.) On SQLite the same steps run one
after another in one transaction.

A step marked as a gate makes every later step conditional on it having written a row. The
same rule holds on both databases, so service code reads the outcome the same way.

Chains without gates that threads commit at the same moment are merged into one statement
(GroupCommitter): the referral intake's many concurrent submits share statements and commits.

The steps can also write at once inside a caller's transaction (insert_now, update_now), many
rows in one statement: event handlers that take events in batches use these.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import orjson

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError

from .db import Database
from .fastsql import Statement, insert
from .metrics import WRITE_GROUP_SIZE, WRITE_GROUP_SPLITS

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def to_json(value: Any) -> str:
    """Compact JSON for rows and event bodies on the hot paths (orjson: several times faster than
    the json module). Datetimes and dates come out as ISO 8601, as isoformat() writes them."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"cannot store this in a write chain: {exc}") from None


class InsertStep:
    """INSERT of one or more rows into table (only the named columns; defaults fill the rest)."""

    def __init__(self, table: Table, columns: Sequence[str], *, on_conflict: str = "", gate: bool = False):
        self.table = table.name
        self.columns = list(columns)
        self.on_conflict = on_conflict
        self.gate = gate
        self._sqlite = insert(self.table, self.columns, f"{on_conflict} RETURNING 1")
        self._now: dict[str | None, tuple[Statement, Statement]] = {}

    def _statements(self, returning: str | None) -> tuple[Statement, Statement]:
        if returning not in self._now:
            cols = ", ".join(self.columns)
            tail = f"{self.on_conflict} RETURNING {returning}" if returning else self.on_conflict
            pg = Statement(f"INSERT INTO {self.table} ({cols}) SELECT {cols} FROM "
                           f"jsonb_populate_recordset(NULL::{self.table}, :rows::jsonb) {tail}")
            self._now[returning] = (pg, insert(self.table, self.columns, tail))
        return self._now[returning]

    def insert_now(self, conn: Connection, rows: Sequence[Mapping[str, Any]], returning: str | None = None) -> list:
        """Insert rows at once inside conn's transaction: one statement on PostgreSQL whatever
        the number of rows. Returns the `returning` column of each row written (a conflict
        skipped by on_conflict writes nothing)."""
        if not rows:
            return []
        pg, sqlite = self._statements(returning)
        if conn.dialect.name == "postgresql":
            found = pg.execute(conn, self.pg_params("rows", list(rows)))
        else:
            found = [r for row in rows for r in sqlite.execute(conn, {c: row.get(c) for c in self.columns})]
        return [r[0] for r in found] if returning else []

    def cte(self, name: str, param: str, gates: list[str]) -> str:
        cols = ", ".join(self.columns)
        # jsonb_populate_recordset gives each value its column's type: no casts to maintain.
        return (f"{name} AS (INSERT INTO {self.table} ({cols}) SELECT {cols} FROM "
                f"jsonb_populate_recordset(NULL::{self.table}, %({param})s::jsonb){_where(gates)} "
                f"{self.on_conflict} RETURNING 1)")

    def pg_params(self, param: str, rows: list[Mapping[str, Any]]) -> dict[str, Any]:
        return {param: to_json([{c: row.get(c) for c in self.columns} for row in rows])}

    def run_sqlite(self, conn, rows: list[Mapping[str, Any]]) -> bool:
        wrote = False
        for row in rows:
            wrote = bool(self._sqlite.execute(conn, {c: row.get(c) for c in self.columns})) or wrote
        return wrote


class UpdateStep:
    """UPDATE of the row matching `match` columns, only while its `when` columns hold the given
    values (a guarded state change), setting `columns`. A tuple or list in `when` means any of
    its values (`column IN (...)`)."""

    def __init__(self, table: Table, *, match: Sequence[str], columns: Sequence[str], when: Mapping[str, Any],
                 gate: bool = False):
        self.table = table.name
        self.match = list(match)
        self.columns = list(columns)
        self.when = {k: tuple(v) if isinstance(v, (tuple, list)) else v for k, v in when.items()}
        if any(v == () for v in self.when.values()):
            raise ValueError("a `when` column needs at least one value")
        self.gate = gate
        sets = ", ".join(f"{c} = :{c}" for c in self.columns)
        conds = " AND ".join([f"{m} = :{m}" for m in self.match] + self._when_conds("", _colon))
        self._sqlite_update = f"UPDATE {self.table} SET {sets} WHERE {conds}"
        self._sqlite = Statement(f"{self._sqlite_update} RETURNING 1")
        self._now: dict[str, tuple[Statement, Statement]] = {}

    def _when_names(self, prefix: str = "") -> dict[str, list[str]]:
        """Each `when` column's parameter names: one for a value, one per item of a tuple."""
        return {k: [f"{prefix}when_{k}_{i}" for i in range(len(v))] if isinstance(v, tuple) else [f"{prefix}when_{k}"]
                for k, v in self.when.items()}

    def _when_conds(self, alias: str, mark: Callable[[str], str], prefix: str = "") -> list[str]:
        """The `when` conditions, each parameter written by mark (`:name` or `%(name)s`)."""
        return [f"{alias}{k} IN ({', '.join(map(mark, names))})" if isinstance(self.when[k], tuple)
                else f"{alias}{k} = {mark(names[0])}" for k, names in self._when_names(prefix).items()]

    def _when_params(self, prefix: str = "") -> dict[str, Any]:
        values = {k: v if isinstance(v, tuple) else (v,) for k, v in self.when.items()}
        return {name: value for k, names in self._when_names(prefix).items() for name, value in zip(names, values[k])}

    def _statements(self, returning: str) -> tuple[Statement, Statement]:
        if returning not in self._now:
            sets = ", ".join(f"{c} = x.{c}" for c in self.columns)
            conds = " AND ".join([f"t.{m} = x.{m}" for m in self.match] + self._when_conds("t.", _colon)
                                 # The planner guesses 100 rows from a jsonb function and would
                                 # scan the whole table; the key list lets it use the index.
                                 + [f"t.{m} = ANY(:keys_{m})" for m in self.match])
            pg = Statement(f"UPDATE {self.table} AS t SET {sets} FROM "
                           f"jsonb_populate_recordset(NULL::{self.table}, :rows::jsonb) AS x "
                           f"WHERE {conds} RETURNING t.{returning}")
            sqlite = Statement(f"{self._sqlite_update} RETURNING {returning}")
            self._now[returning] = (pg, sqlite)
        return self._now[returning]

    def update_now(self, conn: Connection, rows: Sequence[Mapping[str, Any]], returning: str) -> list:
        """Apply the guarded change to every row at once inside conn's transaction (one statement
        on PostgreSQL); returns the `returning` column of each row that changed."""
        if not rows:
            return []
        pg, sqlite = self._statements(returning)
        when = self._when_params()
        if conn.dialect.name == "postgresql":
            rows_json = to_json([{c: row.get(c) for c in self.match + self.columns} for row in rows])
            keys = {f"keys_{m}": sorted({row.get(m) for row in rows}) for m in self.match}
            found = pg.execute(conn, {"rows": rows_json, **when, **keys})
        else:
            found = [r for row in rows
                     for r in sqlite.execute(conn, {**{c: row.get(c) for c in self.match + self.columns}, **when})]
        return [r[0] for r in found]

    def cte(self, name: str, param: str, gates: list[str]) -> str:
        sets = ", ".join(f"{c} = x.{c}" for c in self.columns)
        conds = [f"t.{m} = x.{m}" for m in self.match] + self._when_conds("t.", _pyformat, f"{param}_")
        conds += [f"EXISTS (SELECT 1 FROM {g})" for g in gates]
        return (f"{name} AS (UPDATE {self.table} AS t SET {sets} FROM "
                f"jsonb_populate_record(NULL::{self.table}, %({param})s::jsonb) AS x "
                f"WHERE {' AND '.join(conds)} RETURNING 1)")

    def pg_params(self, param: str, rows: list[Mapping[str, Any]]) -> dict[str, Any]:
        (row,) = rows
        params = {param: to_json({c: row.get(c) for c in self.match + self.columns})}
        params.update(self._when_params(f"{param}_"))
        return params

    def run_sqlite(self, conn, rows: list[Mapping[str, Any]]) -> bool:
        (row,) = rows
        params = {c: row.get(c) for c in self.match + self.columns}
        params.update(self._when_params())
        return bool(self._sqlite.execute(conn, params))


def _colon(name: str) -> str:
    return f":{name}"


def _pyformat(name: str) -> str:
    return f"%({name})s"


def _where(gates: list[str]) -> str:
    return " WHERE " + " AND ".join(f"EXISTS (SELECT 1 FROM {g})" for g in gates) if gates else ""


@dataclass
class WriteChain:
    db: Database
    steps: list[tuple[InsertStep | UpdateStep, list[Mapping[str, Any]]]] = field(default_factory=list)

    def add(self, step: InsertStep | UpdateStep, rows: Mapping[str, Any] | list[Mapping[str, Any]]) -> None:
        self.steps.append((step, [rows] if isinstance(rows, Mapping) else list(rows)))

    def run(self) -> list[bool]:
        """Write everything; returns, per gate step in order, whether it wrote."""
        if self.db.is_postgres and not any(step.gate for step, _ in self.steps):
            return _committer(self.db).run(self)
        return self.run_alone()

    def run_alone(self) -> list[bool]:
        steps = self.written_steps
        if not steps:
            return []
        return self._run_postgres(steps) if self.db.is_postgres else self._run_sqlite(steps)

    @property
    def written_steps(self) -> list[tuple[InsertStep | UpdateStep, list[Mapping[str, Any]]]]:
        return [(step, rows) for step, rows in self.steps if rows]

    def _run_sqlite(self, steps) -> list[bool]:
        outcomes: list[bool] = []
        with self.db.transaction() as conn:
            for step, rows in steps:
                if not all(outcomes):
                    if step.gate:
                        outcomes.append(False)
                    continue
                wrote = step.run_sqlite(conn, rows)
                if step.gate:
                    outcomes.append(wrote)
        return outcomes

    def _run_postgres(self, steps) -> list[bool]:
        key = tuple(id(s) for s, _ in steps)
        sql = _compiled.get(key)
        if sql is None:
            sql = _compile(steps)
            _compiled[key] = sql
        params: dict[str, Any] = {}
        for i, (step, rows) in enumerate(steps):
            params.update(step.pg_params(f"p{i}", rows))
        raw = self.db.autocommit_engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()
            try:
                cursor.execute(sql, params)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except self.db.autocommit_engine.dialect.loaded_dbapi.Error as exc:
            # The same exception SQLAlchemy would raise (IntegrityError for a unique key, ...).
            raise DBAPIError.instance(sql, params, exc, self.db.autocommit_engine.dialect.loaded_dbapi.Error,
                                      dialect=self.db.autocommit_engine.dialect) from exc
        finally:
            raw.close()
        return [bool(v) for v in row] if row and row[0] is not None else []


_compiled: dict[tuple[int, ...], str] = {}


class _Waiting:
    def __init__(self, chain: WriteChain):
        self.chain = chain
        self.wake = threading.Event()
        self.leads = False
        self.done = False
        self.result: list[bool] | None = None      # set once written
        self.error: BaseException | None = None


class GroupCommitter:
    """Writes chains that many threads commit at the same moment as one statement (group commit).

    A chain that finds no write in progress is written at once. Chains that arrive while one is
    being written wait; when it ends, the first of them leads: it takes every waiting chain (at
    most max_group) and writes them together, their rows merged step by step, in one statement
    and one commit. Only chains without gates are merged (a gate is one chain's own condition).
    If a merged write fails (a unique key clash, say), nothing of it was written, and each chain
    is written again alone, so an error belongs only to the chain that caused it."""

    def __init__(self, max_group: int = 64):
        self.max_group = max_group
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._busy = False

    def run(self, chain: WriteChain) -> list[bool]:
        me = _Waiting(chain)
        with self._lock:
            self._waiting.append(me)
            if not self._busy:
                self._busy = me.leads = True
        while not me.done:
            if me.leads:
                self._lead()
            else:
                me.wake.wait()
                me.wake.clear()
        if me.error is not None:
            raise me.error
        return me.result

    def _lead(self) -> None:
        with self._lock:
            group = self._waiting[:self.max_group]
            del self._waiting[:self.max_group]
        try:
            self._write(group)
        finally:
            with self._lock:
                if self._waiting:
                    successor = self._waiting[0]
                    successor.leads = True
                    successor.wake.set()
                else:
                    self._busy = False
            for waiting in group:
                if waiting.result is None and waiting.error is None:
                    # _write itself failed: never report a write that may not have happened.
                    waiting.error = RuntimeError("the group write was interrupted before this chain was written")
                waiting.leads = False
                waiting.done = True
                waiting.wake.set()

    @staticmethod
    def _write(group: list[_Waiting]) -> None:
        by_shape: dict[tuple[int, ...], list[tuple[_Waiting, list]]] = {}
        for waiting in group:
            steps = waiting.chain.written_steps
            by_shape.setdefault(tuple(id(step) for step, _ in steps), []).append((waiting, steps))
        for shaped in by_shape.values():
            same = [waiting for waiting, _ in shaped]
            WRITE_GROUP_SIZE.observe(len(same))
            if len(same) > 1:
                merged = WriteChain(same[0].chain.db)
                for i, (step, _) in enumerate(shaped[0][1]):
                    merged.add(step, [row for _, steps in shaped for row in steps[i][1]])
                try:
                    merged.run_alone()
                    for waiting in same:
                        waiting.result = []
                    continue
                except Exception:
                    WRITE_GROUP_SPLITS.inc()  # nothing was written: each chain alone, below
            for waiting in same:
                try:
                    waiting.result = waiting.chain.run_alone()
                except BaseException as error:  # handed to the thread whose chain it is
                    waiting.error = error


_committers_lock = threading.Lock()


def _committer(db: Database) -> GroupCommitter:
    """One per database (engine) in the process."""
    committer = getattr(db, "_group_committer", None)
    if committer is None:
        with _committers_lock:
            committer = getattr(db, "_group_committer", None)
            if committer is None:
                committer = db._group_committer = GroupCommitter()
    return committer


def _compile(steps) -> str:
    ctes, gates, gate_names = [], [], []
    for i, (step, _) in enumerate(steps):
        name = f"s{i}"
        ctes.append(step.cte(name, f"p{i}", list(gates)))
        if step.gate:
            gates.append(name)
            gate_names.append(name)
    outcome = ", ".join(f"EXISTS (SELECT 1 FROM {g})" for g in gate_names) or "NULL"
    # Every CTE runs even if the final SELECT does not read it (PostgreSQL executes all
    # data-modifying CTEs exactly once).
    return "WITH " + ",\n".join(ctes) + f"\nSELECT {outcome}"
