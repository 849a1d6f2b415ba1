"""WriteChain on real databases: one statement on PostgreSQL, one transaction on SQLite, with
the same gate rule and all-or-nothing behaviour on both."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import (Boolean, Column, DateTime, Integer, MetaData, String, Table, Text, UniqueConstraint, select,
                        text)
from sqlalchemy.exc import IntegrityError

from mend_common.chain import InsertStep, UpdateStep, WriteChain
from mend_common.db import Database

metadata = MetaData()
things = Table("things", metadata,
               Column("thing_id", String(36), primary_key=True),
               Column("owner", String(20), nullable=False),
               Column("size", Integer),
               Column("ok", Boolean, nullable=False),
               Column("state", String(20), nullable=False),
               Column("at", DateTime(timezone=True), nullable=False),
               Column("note", Text),
               UniqueConstraint("owner", name="uq_owner"))
marks = Table("marks", metadata, Column("mark", String(36), primary_key=True))

CLAIM = InsertStep(marks, ("mark",), on_conflict="ON CONFLICT DO NOTHING", gate=True)
THING = InsertStep(things, ("thing_id", "owner", "size", "ok", "state", "at", "note"))
THING_GATE = InsertStep(things, ("thing_id", "owner", "size", "ok", "state", "at", "note"),
                        on_conflict="ON CONFLICT (owner) DO NOTHING", gate=True)
FINISH = UpdateStep(things, match=("thing_id",), columns=("state",), when={"state": "new"}, gate=True)


@pytest.fixture
def db(database_url):
    schema = f"chain_{uuid.uuid4().hex[:8]}"
    database = Database(database_url, schema, pool_size=2)
    with database.engine.begin() as conn:
        if database.is_postgres:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            conn.execute(text(f'SET search_path TO "{schema}"'))
        metadata.create_all(conn)
    yield database
    database.dispose()


def thing(owner: str, **changes) -> dict:
    row = {"thing_id": str(uuid.uuid4()), "owner": owner, "size": None, "ok": True, "state": "new",
           "at": datetime(2026, 5, 1, 9, 30, 15, 123456, tzinfo=timezone.utc), "note": None}
    row.update(changes)
    return row


def rows(db: Database, table: Table) -> list:
    with db.engine.connect() as conn:
        return conn.execute(select(table).order_by(table.c[list(table.c.keys())[0]])).all()


def test_writes_every_step_with_column_types_kept(db):
    chain = WriteChain(db)
    first, second = thing("a", size=3, note="x"), thing("b", ok=False)
    chain.add(THING, [first, second])
    assert chain.run() == []
    stored = {r.owner: r for r in rows(db, things)}
    assert stored["a"].size == 3 and stored["a"].note == "x" and stored["a"].ok is True
    assert stored["b"].size is None and stored["b"].note is None and stored["b"].ok is False
    at = stored["a"].at if stored["a"].at.tzinfo else stored["a"].at.replace(tzinfo=timezone.utc)
    assert at == first["at"]


def test_a_gate_that_writes_nothing_skips_every_later_step(db):
    mark = str(uuid.uuid4())
    chain = WriteChain(db)
    chain.add(CLAIM, {"mark": mark})
    chain.add(THING, thing("a"))
    assert chain.run() == [True]
    again = WriteChain(db)
    again.add(CLAIM, {"mark": mark})          # already there: the gate writes nothing
    again.add(THING, thing("b"))
    assert again.run() == [False]
    assert [r.owner for r in rows(db, things)] == ["a"]


def test_gates_chain_and_report_each_outcome(db):
    chain = WriteChain(db)
    chain.add(CLAIM, {"mark": "m1"})
    chain.add(THING_GATE, thing("a"))
    assert chain.run() == [True, True]
    clash = WriteChain(db)
    clash.add(CLAIM, {"mark": "m2"})
    clash.add(THING_GATE, thing("a"))          # owner "a" exists: second gate writes nothing
    clash.add(THING, thing("c"))
    assert clash.run() == [True, False]
    assert sorted(r.owner for r in rows(db, things)) == ["a"]
    assert sorted(r.mark for r in rows(db, marks)) == ["m1", "m2"]


def test_a_guarded_update_moves_only_from_its_state(db):
    row = thing("a")
    setup = WriteChain(db)
    setup.add(THING, row)
    setup.run()
    move = WriteChain(db)
    move.add(FINISH, {"thing_id": row["thing_id"], "state": "done"})
    assert move.run() == [True]
    again = WriteChain(db)
    again.add(FINISH, {"thing_id": row["thing_id"], "state": "done again"})
    assert again.run() == [False]
    assert rows(db, things)[0].state == "done"


def test_all_or_nothing_when_a_step_fails(db):
    chain = WriteChain(db)
    chain.add(CLAIM, {"mark": "m1"})
    chain.add(THING, [thing("a"), thing("a")])    # the second violates uq_owner
    with pytest.raises(IntegrityError):
        chain.run()
    assert rows(db, marks) == [] and rows(db, things) == []
