"""Worker processes run under eventlet: psycopg must wait for PostgreSQL cooperatively
(PSYCOPG_WAIT_FUNC=wait_select, set by mend-worker) or one slow query stalls every greenthread.

Each scenario runs in a child Python process, so this pytest process is never monkeypatched."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SLEEP_SECONDS = 1.0
QUERIES = 3

# What a worker does (mend_common.launch.worker_main): the wait function is chosen before psycopg
# is first imported, then eventlet patches the process, then the Database is built.
CHILD = textwrap.dedent("""
    import json, os, sys, time
    import warnings
    warnings.simplefilter("ignore")
    if os.environ.get("WANT_WAIT_FUNC"):
        os.environ["PSYCOPG_WAIT_FUNC"] = os.environ["WANT_WAIT_FUNC"]
    else:
        os.environ.pop("PSYCOPG_WAIT_FUNC", None)
    import eventlet
    eventlet.monkey_patch()
    from sqlalchemy import text
    from mend_common.db import Database

    url, sleep, queries = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    db = Database(url, "public", pool_size=queries + 2)
    app_name = "mend-public"
    with db.engine.connect() as conn:   # open the pool's connections before the clock starts
        conn.execute(text("SELECT 1"))
    seen = []
    finished = eventlet.event.Event()

    def slow():
        with db.engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(:s)"), {"s": sleep})

    def watch():
        with db.engine.connect() as conn:
            while not finished.ready():
                seen.append(conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :app AND state = 'active' "
                    "AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"), {"app": app_name}).scalar())
                conn.commit()   # a fresh snapshot of pg_stat_activity each time
                eventlet.sleep(0.05)

    started = time.monotonic()
    watcher = eventlet.spawn(watch)
    eventlet.sleep(0)
    pool = eventlet.GreenPool()
    for _ in range(queries):
        pool.spawn(slow)
    pool.waitall()
    elapsed = time.monotonic() - started
    finished.send(True)
    watcher.wait()
    import psycopg.waiting
    print(json.dumps({"max_active": max(seen or [0]), "samples": len(seen), "elapsed": elapsed,
                      "wait_func": psycopg.waiting.wait.__name__}))
    db.dispose()
""")


def _run(url: str, wait_func: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PSYCOPG_WAIT_FUNC"}
    env["WANT_WAIT_FUNC"] = wait_func or ""
    done = subprocess.run([sys.executable, "-c", CHILD, url, str(SLEEP_SECONDS), str(QUERIES)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_slow_queries_overlap_with_the_wait_function_the_worker_sets(postgres_database):
    result = _run(postgres_database.url, "wait_select")
    assert result["wait_func"] == "wait_select"
    assert result["max_active"] >= 2, result
    # Three one-second queries side by side take about a second, not three.
    assert result["elapsed"] < QUERIES * SLEEP_SECONDS * 0.8, result


def test_without_it_psycopg_blocks_the_whole_process(postgres_database):
    """The contrast: psycopg's default (C) wait blocks the OS thread, so the greenthreads take
    turns; the watcher cannot even run while a query is in progress."""
    result = _run(postgres_database.url, None)
    if result["wait_func"] != "wait_c":
        pytest.skip(f"psycopg chose {result['wait_func']} by itself here; nothing to contrast")
    assert result["max_active"] <= 1, result
    assert result["elapsed"] >= QUERIES * SLEEP_SECONDS * 0.95, result
