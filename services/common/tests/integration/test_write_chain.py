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
MARK = InsertStep(marks, ("mark",))
SETTLE = UpdateStep(things, match=("thing_id",), columns=("state",), when={"state": ("new", "open")}, gate=True)


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


# -- group commit -------------------------------------------------------------------------------
def test_chains_committed_together_by_many_threads_are_all_written_and_share_statements(db):
    """32 threads commit 20 chains each at once: every row is written exactly once, and on
    PostgreSQL many chains went in one statement."""
    from concurrent.futures import ThreadPoolExecutor
    from mend_common.chain import _committer

    owners = [f"o{t}-{i}" for t in range(32) for i in range(20)]

    def commit(owner):
        chain = WriteChain(db)
        chain.add(THING, thing(owner))
        chain.add(MARK, {"mark": owner})
        return chain.run()

    statements = []
    if db.is_postgres:
        original = WriteChain._run_postgres
        WriteChain._run_postgres = lambda self, steps: statements.append(len(steps[0][1])) or original(self, steps)
    try:
        with ThreadPoolExecutor(32) as pool:
            assert list(pool.map(commit, owners)) == [[]] * len(owners)
    finally:
        if db.is_postgres:
            WriteChain._run_postgres = original
    assert sorted(r.owner for r in rows(db, things)) == sorted(owners)
    assert sorted(r.mark for r in rows(db, marks)) == sorted(owners)
    if db.is_postgres:
        assert sum(statements) == len(owners) and len(statements) < len(owners)
        assert not _committer(db)._waiting and not _committer(db)._busy


def test_a_clash_in_a_group_fails_only_its_own_chain(db):
    """Chains merged into one statement: one breaks a unique key, so the merged write fails and
    each chain is written alone; only the clashing one raises, the others are written."""
    from mend_common.chain import GroupCommitter, _Waiting

    first = WriteChain(db)
    first.add(THING, thing("taken"))
    first.run()
    chains = []
    for owner in ("x1", "taken", "x2"):
        chain = WriteChain(db)
        chain.add(THING, thing(owner))
        chain.add(MARK, {"mark": owner})
        chains.append(chain)
    group = [_Waiting(c) for c in chains]
    GroupCommitter._write(group)
    assert group[0].error is None and group[2].error is None
    assert isinstance(group[1].error, IntegrityError)
    assert sorted(r.owner for r in rows(db, things)) == ["taken", "x1", "x2"]
    assert sorted(r.mark for r in rows(db, marks)) == ["x1", "x2"]


# -- writes at once, many rows, inside a transaction ----------------------------------------------
def test_insert_now_returns_what_it_wrote_and_skips_conflicts(db):
    with db.transaction() as conn:
        if db.is_postgres:
            conn.exec_driver_sql(f'SET LOCAL search_path TO "{db.schema}"')
        assert sorted(CLAIM.insert_now(conn, [{"mark": "a"}, {"mark": "b"}, {"mark": "a"}], returning="mark")) \
            == ["a", "b"]
        assert CLAIM.insert_now(conn, [{"mark": "a"}, {"mark": "c"}], returning="mark") == ["c"]
        assert CLAIM.insert_now(conn, []) == []


def test_update_now_changes_only_rows_still_in_the_expected_state(db):
    a, b = thing("a"), thing("b", state="done")
    chain = WriteChain(db)
    chain.add(THING, [a, b])
    chain.run()
    with db.transaction() as conn:
        if db.is_postgres:
            conn.exec_driver_sql(f'SET LOCAL search_path TO "{db.schema}"')
        changed = FINISH.update_now(conn, [{"thing_id": a["thing_id"], "state": "done"},
                                           {"thing_id": b["thing_id"], "state": "done"},
                                           {"thing_id": str(uuid.uuid4()), "state": "done"}], returning="thing_id")
    assert changed == [a["thing_id"]]
    assert {r.owner: r.state for r in rows(db, things)} == {"a": "done", "b": "done"}


def test_a_failed_insert_now_rolls_back_with_its_transaction(db):
    with pytest.raises(IntegrityError):
        with db.transaction() as conn:
            if db.is_postgres:
                conn.exec_driver_sql(f'SET LOCAL search_path TO "{db.schema}"')
            THING.insert_now(conn, [thing("same"), thing("same")])
    assert rows(db, things) == []


def test_update_now_with_a_tuple_moves_rows_in_any_of_its_states(db):
    new, open_, done = thing("a"), thing("b", state="open"), thing("c", state="done")
    chain = WriteChain(db)
    chain.add(THING, [new, open_, done])
    chain.run()
    with db.transaction() as conn:
        if db.is_postgres:
            conn.exec_driver_sql(f'SET LOCAL search_path TO "{db.schema}"')
        changed = SETTLE.update_now(conn, [{"thing_id": r["thing_id"], "state": "settled"} for r in (new, open_, done)],
                                    returning="thing_id")
    assert sorted(changed) == sorted([new["thing_id"], open_["thing_id"]])
    assert {r.owner: r.state for r in rows(db, things)} == {"a": "settled", "b": "settled", "c": "done"}


def test_a_chained_update_with_a_list_is_guarded_by_every_value(db):
    row = thing("a", state="open")
    setup = WriteChain(db)
    setup.add(THING, row)
    setup.run()
    move = WriteChain(db)
    move.add(UpdateStep(things, match=("thing_id",), columns=("state",), when={"state": ["new", "open"]}, gate=True),
             {"thing_id": row["thing_id"], "state": "settled"})
    assert move.run() == [True]
    again = WriteChain(db)
    again.add(SETTLE, {"thing_id": row["thing_id"], "state": "settled again"})
    assert again.run() == [False]
    assert rows(db, things)[0].state == "settled"


def test_an_empty_tuple_in_when_is_refused():
    with pytest.raises(ValueError):
        UpdateStep(things, match=("thing_id",), columns=("state",), when={"state": ()})
