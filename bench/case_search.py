"""Case search at scale: a fresh PostgreSQL database with the cases schema (its real migrations)
bulk-loaded with N cases (default 100,000: participants, stage history, facilitator allocation
and Victims' Code clocks, six counties with a realistic skew, three years of cases), then the
latency of the service-layer search, services.list_cases (validation, the query, the page's
facilitators/outcome items/clocks and the audit row, committed as in production), for eight
query shapes with randomised parameters, one thread. Every SELECT of each shape is EXPLAINed
once; a Seq Scan on a big table is always reported (--explain prints the plans' top lines).
A benchmark: it prints figures, nothing passes or fails on time."""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from statistics import mean

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import make_url

from mend_cases.adapters.tables import platform
from mend_cases.domain.case import STAGES
from mend_cases.service_layer import services
from mend_cases.service_layer.unit_of_work import CasesUnitOfWork
from mend_common.auth import Principal
from mend_common.db import Database
from mend_common.migrations import upgrade
from mend_common.outbox import PlatformStore
from mend_common.registry import load_definition
from mend_common.testing.plugin import PG_ADMIN_URL
from mend_common.uow import UnitsOfWork


def default_url() -> str:
    """A database of its own for each run (two runs at once must not drop each other's)."""
    return os.environ.get("MEND_BENCH_CASES_DATABASE_URL",
                          PG_ADMIN_URL.rsplit("/", 1)[0] + f"/mend_bench_cases_{uuid.uuid4().hex[:8]}")


# Six counties, the busiest carrying four times the cases of the quietest.
COUNTIES = (("west-yorkshire", 0.28), ("greater-manchester", 0.24), ("merseyside", 0.17), ("lancashire", 0.14),
            ("cumbria", 0.10), ("north-yorkshire", 0.07))
FACILITATORS = 200
OFFENCES = (("violence_against_the_person", "assault"), ("theft", "shoplifting"), ("burglary", "burglary dwelling"),
            ("criminal_damage", "criminal damage"), ("public_order", "public order"),
            ("stalking_and_harassment", "harassment"), ("anti_social_behaviour", "anti-social behaviour"),
            ("neighbour_dispute", "neighbour dispute"), ("robbery", "robbery"), ("fraud", "fraud"))
BIG_TABLES = ("cases", "case_participants", "case_stage_history", "case_facilitators", "case_clocks",
              "case_outcome_items", "case_consents", "audit_log")
PAGES = 20


def _rss_mib() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# -- the database ------------------------------------------------------------------------------
def _admin_url(url: str) -> tuple[str, str]:
    parsed = make_url(url)
    if not (parsed.database or "").startswith("mend_bench"):
        # It is dropped and created again: never anything but a bench database.
        raise SystemExit(f"refusing to drop database {parsed.database!r}: its name must start with mend_bench")
    return parsed.set(database="postgres").render_as_string(hide_password=False), parsed.database


def _recreate(url: str) -> None:
    admin, name = _admin_url(url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _drop(url: str) -> None:
    admin, name = _admin_url(url)
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the data ----------------------------------------------------------------------------------
def _stage_for(age_days: float, rng: random.Random) -> int:
    """Older cases have mostly moved on or closed; the newest are spread over the early stages."""
    closed = len(STAGES) - 1
    if age_days > 365:
        return closed if rng.random() < 0.95 else rng.choice((7, 8))
    if age_days > 180:
        return closed if rng.random() < 0.75 else rng.randint(5, 8)
    if age_days > 60:
        return closed if rng.random() < 0.35 else rng.randint(2, 8)
    return closed if rng.random() < 0.08 else min(8, int(rng.expovariate(1 / 2.2)))


def _copy(conn: psycopg.Connection, table: str, columns: tuple[str, ...], lines: list[str]) -> None:
    """COPY text rows (no generated value holds a tab, newline or backslash; \\N is NULL)."""
    cols = ", ".join(f'"{c}"' for c in columns)
    with conn.cursor().copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for start in range(0, len(lines), 20_000):
            copy.write("\n".join(lines[start:start + 20_000]) + "\n")


def _array(values) -> str:
    return "{" + ",".join(str(v) for v in values) + "}"


CASE_COLS = ("case_id", "referral_id", "county", "stage", "initiated_by", "offence_type", "offence_category",
             "offence_date", "offence_flags", "referring_agency_id", "agency_reference", "opened_at", "updated_at",
             "offence_reported_date", "seriousness", "eligibility", "intervention_kind", "follow_up", "closure",
             "closure_reason", "closed_at", "version")
# One row a case of what Python drew for it; SQL expands it into the child tables.
PLAN_COLS = ("case_id", "county", "opened_at", "updated_at", "stage_i", "path", "roles", "facilitators",
             "outcome_items", "closed")
PLAN_TABLE = """CREATE TEMP TABLE bench_plan (case_id text PRIMARY KEY, county text, opened_at timestamptz,
    updated_at timestamptz, stage_i int, path int[], roles text[], facilitators text[], outcome_items int,
    closed boolean)"""
EXPAND = [
    # Every stage the case has passed through, evenly between opening and its last change.
    """INSERT INTO cases.case_stage_history (case_id, stage, at, "by", reason)
       SELECT p.case_id, (%(stages)s::text[])[s.k + 1],
              p.opened_at + (p.updated_at - p.opened_at) * (s.n - 1) / greatest(cardinality(p.path) - 1, 1),
              CASE WHEN s.n = 1 THEN 'service:cases' ELSE 'staff:coord-' || p.county END, ''
       FROM bench_plan p, unnest(p.path) WITH ORDINALITY AS s(k, n)
       ORDER BY p.case_id, s.n""",
    """INSERT INTO cases.case_participants (participant_id, case_id, role, given_name, family_name, age, is_youth,
           vulnerabilities, consent_to_contact, preferred_channel, contact, consent_status, consent_method,
           consent_at)
       SELECT gen_random_uuid()::text, p.case_id, r.role, 'Given' || (r.n * 7 + length(p.case_id)),
              'Family' || substr(p.case_id, 1, 4),
              CASE WHEN r.role = 'responsible_person' AND 'parent_or_guardian' = ANY(p.roles)
                   THEN 12 + (random() * 5)::int ELSE 18 + (random() * 67)::int END,
              r.role = 'responsible_person' AND 'parent_or_guardian' = ANY(p.roles),
              '[]', true, 'email', '{"email": "' || r.role || '@example.org"}',
              CASE WHEN p.stage_i >= 4 THEN 'given' WHEN p.stage_i = 3 THEN 'requested' ELSE 'not_requested' END,
              CASE WHEN p.stage_i >= 4 THEN 'written' ELSE '' END,
              CASE WHEN p.stage_i >= 4 THEN p.opened_at + interval '10 days' END
       FROM bench_plan p, unnest(p.roles) WITH ORDINALITY AS r(role, n)""",
    # Two clocks a victim, due within 60 days either side of today; about 30% met, and most of
    # the unmet ones whose day has gone already flagged breached by the sweep.
    """INSERT INTO cases.case_clocks (clock_id, case_id, county, kind, participant_id, started_on, basis, due_on,
           met_at, breached_at)
       SELECT gen_random_uuid()::text, case_id, county, kind, participant_id, due - days, 'crime reported', due,
              CASE WHEN r_met < 0.30 THEN (due - days + (r_day * days)::int)::timestamp AT TIME ZONE 'UTC'
                   + interval '10 hours' END,
              CASE WHEN r_met >= 0.30 AND due < current_date AND r_sweep < 0.9
                   THEN (due + 1)::timestamp AT TIME ZONE 'UTC' END
       FROM (SELECT cp.case_id, p.county, k.kind, k.days, cp.participant_id,
                    current_date + (floor(random() * 121) - 60)::int AS due,
                    random() AS r_met, random() AS r_day, random() AS r_sweep
             FROM cases.case_participants cp JOIN bench_plan p ON p.case_id = cp.case_id
             CROSS JOIN (VALUES ('rj_information', 7), ('support_referral', 3)) AS k(kind, days)
             WHERE cp.role = 'victim') AS drawn""",
    """INSERT INTO cases.case_facilitators (case_id, facilitator_id, "lead", allocated_at, allocated_by)
       SELECT p.case_id, f.id, f.n = 1, p.opened_at + interval '3 days', 'staff:coord-' || p.county
       FROM bench_plan p, unnest(p.facilitators) WITH ORDINALITY AS f(id, n)""",
    """INSERT INTO cases.case_outcome_items (item_id, case_id, county, kind, description, owner_participant_id,
           due_on, status, recorded_by, updated_at, overdue_flagged_at)
       SELECT gen_random_uuid()::text, case_id, county, kind, 'as agreed at the conference', participant_id,
              due, status, 'staff:coord-' || county, updated_at,
              CASE WHEN status = 'pending' AND due < current_date THEN now() END
       FROM (SELECT p.case_id, p.county, cp.participant_id, p.updated_at,
                    (ARRAY['apology', 'reparation', 'community_work', 'behaviour_commitment'])
                        [1 + floor(random() * 4)::int] AS kind,
                    (p.opened_at + (40 + floor(random() * 80)::int) * interval '1 day')::date AS due,
                    CASE WHEN p.closed OR random() < 0.5 THEN 'completed' ELSE 'pending' END AS status
             FROM bench_plan p JOIN cases.case_participants cp
                  ON cp.case_id = p.case_id AND cp.role = 'responsible_person'
             CROSS JOIN LATERAL generate_series(1, p.outcome_items) AS g(n)) AS drawn""",
]


def facilitator_pool(rng: random.Random) -> dict[str, list[tuple[str, float]]]:
    """About 200 facilitators, each working in one county (in proportion to its cases), each
    with a caseload weight (some carry more than others)."""
    pool: dict[str, list[tuple[str, float]]] = {}
    left = FACILITATORS
    for i, (county, weight) in enumerate(COUNTIES):
        n = left if i == len(COUNTIES) - 1 else max(3, round(FACILITATORS * weight))
        left -= n
        pool[county] = [(f"fac-{county}-{j:03d}", rng.uniform(0.4, 1.6)) for j in range(n)]
    return pool


def load(url: str, n_cases: int, seed: int = 7) -> dict:
    """Cases straight into the tables: Python draws each case (county, age, stage, its path so
    far, parties, allocation) and COPYs the cases rows and a plan of the rest; one INSERT ...
    SELECT a table then expands the plan into history, participants, clocks, allocation and
    outcome items."""
    rng = random.Random(seed)
    phases: dict[str, float] = {}
    started = time.perf_counter()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    pool = facilitator_pool(rng)
    fac_ids = {c: [f for f, _ in fs] for c, fs in pool.items()}
    fac_weights = {c: [w for _, w in fs] for c, fs in pool.items()}
    names = [c for c, _ in COUNTIES]
    weights = [w for _, w in COUNTIES]
    agencies = {c: [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(8)] for c in names}
    span = 3 * 365 * 86400
    closed_i = len(STAGES) - 1
    uid = lambda: str(uuid.UUID(int=rng.getrandbits(128), version=4))  # noqa: E731 (seeded)
    case_lines: list[str] = []
    plan_lines: list[str] = []
    allocated = 0
    for i in range(n_cases):
        case_id = uid()
        county = rng.choices(names, weights)[0]
        opened = now - timedelta(seconds=int(span * rng.random() ** 1.15))   # a little growth year on year
        age_days = (now - opened).total_seconds() / 86400
        stage_i = _stage_for(age_days, rng)
        stage = STAGES[stage_i]
        # The path so far: every stage up to the current one (a closed case stops somewhere first).
        path = list(range(stage_i + 1)) if stage_i < closed_i else \
            list(range(rng.randint(1, closed_i - 1) + 1)) + [closed_i]
        updated = min(now, opened + timedelta(hours=sum(rng.randint(6, 480) for _ in path[1:])))
        opened_s, updated_s = opened.isoformat(), updated.isoformat()
        coordinator = f"staff:coord-{county}"
        category, offence = rng.choice(OFFENCES)
        offence_day = (opened - timedelta(days=rng.randint(1, 90))).date()
        reported_day = offence_day + timedelta(days=rng.randint(0, 5))
        eligibility = follow_up = closure = closure_reason = closed_at = r"\N"
        if len(path) > 2 or stage_i >= 2:
            eligibility = ('{"decision": "accepted", "facts_acknowledged": true, "reason": "", '
                           f'"decided_by": "{coordinator}", "decided_at": "{(opened + timedelta(days=2)).isoformat()}"}}')
        completed = False
        if stage_i == closed_i:
            completed = path[-2] >= 7
            closure_reason = "completed" if completed else rng.choice(
                ("declined", "unsuitable", "withdrawn", "unable_to_contact"))
            closed_at = updated_s
            closure = (f'{{"reason": "{closure_reason}", "note": "", "closed_by": "{coordinator}", '
                       f'"closed_at": "{updated_s}", "after_rejection": false}}')
        if stage == "follow_up" or completed:
            follow_up = ('{"support_given": "signposting", "signposted_to": ["victim support"], '
                         f'"satisfaction": "{rng.choice(("very_satisfied", "satisfied", "neither"))}", '
                         f'"recorded_by": "{coordinator}", "recorded_at": "{updated_s}"}}')
        case_lines.append("\t".join((
            case_id, uid(), county, stage, rng.choice(("victim_led", "offender_led")), offence, category,
            offence_day.isoformat(), '["domestic_abuse"]' if rng.random() < 0.08 else "[]",
            rng.choice(agencies[county]), f"{county[:3].upper()}/{i:07d}", opened_s, updated_s,
            reported_day.isoformat(), rng.choices(("standard", "serious", "sensitive_complex"), (85, 12, 3))[0],
            eligibility, "direct_conference" if stage_i >= 6 else "", follow_up, closure, closure_reason, closed_at,
            str(len(path) - 1))))
        # Parties: a victim and a responsible person; sometimes a second victim, a supporter,
        # a parent or guardian (about 2.2 a case).
        roles = ["victim", "responsible_person"]
        if rng.random() < 0.07:
            roles.append("victim")
        if rng.random() < 0.05:
            roles.append("supporter")
        if rng.random() < 0.12:
            roles.append("parent_or_guardian")
        # Allocation: about 70% of cases, nearly all of those past eligibility; a fifth with two.
        facilitators: list[str] = []
        if rng.random() < (0.82 if stage_i >= 2 else 0.15):
            allocated += 1
            facilitators = rng.choices(fac_ids[county], fac_weights[county], k=2)
            if rng.random() > 0.2 or facilitators[0] == facilitators[1]:
                facilitators = facilitators[:1]
        outcome_items = rng.randint(1, 3) if 7 <= stage_i <= 8 or completed else 0
        plan_lines.append("\t".join((case_id, county, opened_s, updated_s, str(stage_i), _array(path),
                                     _array(roles), _array(facilitators), str(outcome_items),
                                     "t" if stage_i == closed_i else "f")))
    phases["draw"] = time.perf_counter() - started

    def lap(name: str) -> None:
        nonlocal started
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - started
        started = time.perf_counter()

    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        conn.execute("SET synchronous_commit = off")
        conn.execute("SELECT setseed(%s)", (rng.random() * 2 - 1,))
        _copy(conn, "cases.cases", CASE_COLS, case_lines)
        lap("cases")
        conn.execute(PLAN_TABLE)
        _copy(conn, "bench_plan", PLAN_COLS, plan_lines)
        lap("plan")
        for statement in EXPAND:
            conn.execute(statement, {"stages": list(STAGES)} if "%(stages)s" in statement else None)
            lap(statement.split("cases.")[1].split()[0])
        conn.commit()
        counts = {table: conn.execute(f"SELECT count(*) FROM cases.{table}").fetchone()[0] for table in
                  ("cases", "case_participants", "case_stage_history", "case_facilitators", "case_clocks",
                   "case_outcome_items")}
        met, breached, clocks = conn.execute(
            "SELECT count(met_at), count(breached_at), count(*) FROM cases.case_clocks").fetchone()
    return {"rows": counts, "phases_s": phases, "allocated_share": allocated / max(n_cases, 1),
            "clocks_met_share": met / max(clocks, 1), "clocks_breached_share": breached / max(clocks, 1),
            "facilitators": fac_ids}


def vacuum_analyze(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for table in BIG_TABLES:
            conn.execute(f'VACUUM (ANALYZE) cases."{table}"')


# -- the query shapes --------------------------------------------------------------------------
def staff(subject: str, roles: set[str], counties) -> Principal:
    return Principal(kind="staff", subject=subject, roles=frozenset(roles), counties=frozenset(counties))


def _args(county: str = "", stage: str | None = None, page_token: str = "", facilitator_id: str = "",
          clock_due_by: str = "", breached_only: bool = False) -> dict:
    return {"county": county, "stage": stage, "page_size": 50, "page_token": page_token,
            "facilitator_id": facilitator_id, "clock_due_by": clock_due_by, "breached_only": breached_only}


def shapes(rng: random.Random, facilitators: dict[str, list[str]]):
    """name -> a generator of (principal, list_cases arguments, page number); each is sent the
    next_page_token of the call it last gave (only deep pagination uses it)."""
    names = [c for c, _ in COUNTIES]
    weights = [w for _, w in COUNTIES]
    today = date.today()

    def county() -> str:
        return rng.choices(names, weights)[0]

    def coordinator(c: str) -> Principal:
        return staff(f"coord-{c}", {"coordinator"}, [c])

    def one_county():
        while True:
            c = county()
            yield coordinator(c), _args(c), 0

    def by_stage():
        while True:
            c = county()
            yield coordinator(c), _args(c, stage=rng.choice(STAGES)), 0

    def by_facilitator():
        while True:
            c = county()
            yield coordinator(c), _args(c, facilitator_id=rng.choice(facilitators[c])), 0

    def facilitator_own():
        while True:
            c = county()
            yield staff(rng.choice(facilitators[c]), {"facilitator"}, [c]), _args(c), 0

    def clock_due_by():
        while True:
            c = county()
            yield coordinator(c), _args(c, clock_due_by=(today + timedelta(days=rng.randint(-30, 30))).isoformat()), 0

    def breached_only():
        while True:
            c = county()
            yield coordinator(c), _args(c, breached_only=True), 0

    def deep_pages():
        while True:
            c = county()
            principal, token = coordinator(c), ""
            for page in range(PAGES):
                token = yield principal, _args(c, page_token=token), page
                if not token:
                    break

    def manager_three():
        while True:
            chosen = rng.sample(names, 3)
            yield staff("manager-north", {"manager"}, chosen), _args(), 0

    return {
        "coordinator, one county, first page": one_county,
        "by stage": by_stage,
        "by facilitator (coordinator)": by_facilitator,
        "facilitator, own cases": facilitator_own,
        "clocks due by a date": clock_due_by,
        "breached clocks only": breached_only,
        f"deep pagination, {PAGES} pages (per page)": deep_pages,
        "manager, three counties": manager_three,
    }


class Captured:
    """The statements one call sends, to EXPLAIN them."""

    def __init__(self, db: Database):
        self.on = False
        self.statements: list[tuple[str, object]] = []
        event.listen(db.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany):
        if self.on and statement.lstrip().upper().startswith("SELECT"):
            self.statements.append((statement, parameters))


def explain(db: Database, statements) -> list[list[str]]:
    plans = []
    with db.engine.connect() as conn:
        for statement, parameters in statements:
            rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters).fetchall()
            plans.append([r[0] for r in rows])
    return plans


def _first_table(statement: str) -> str:
    words = statement.split()
    for i, w in enumerate(words):
        if w.upper() == "FROM" and i + 1 < len(words):
            return words[i + 1].strip('"').split(".")[-1]
    return "?"


def big_tables(url: str, rows: int = 10_000) -> set[str]:
    """The tables of the cases schema with at least `rows` rows (a Seq Scan on those matters)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'cases' AND c.relkind = 'r' AND c.reltuples >= %s", (rows,))}


def seq_scans_on(big: set[str], statements, plans) -> list[dict]:
    found = []
    for (statement, parameters), plan in zip(statements, plans):
        for line in plan:
            if "Seq Scan on" in line and line.split("Seq Scan on")[1].split()[0].strip('"') in big:
                found.append({"scan": line.strip().lstrip("-> ").strip(), "query_on": _first_table(statement),
                              "sql": statement, "parameters": parameters})
    return found


def measure(cases: int = 100_000, calls: int = 300, warmup: int = 30, database_url: str | None = None,
            keep: bool = False, seed: int = 7, log=print) -> dict:
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    database_url = database_url or default_url()
    _recreate(database_url)
    db = None
    try:
        t0 = time.perf_counter()
        upgrade(load_definition("cases"), database_url)
        migrate_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        loaded = load(database_url, cases, seed)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        vacuum_analyze(database_url)
        analyze_s = time.perf_counter() - t0
        log(f"    loaded {cases} cases in {load_s:.1f} s (COPY, then INSERT ... SELECT), VACUUM ANALYZE {analyze_s:.1f} s, "
            f"migrations {migrate_s:.1f} s: " + ", ".join(f"{t} {n}" for t, n in loaded["rows"].items()))
        log("    load phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in loaded["phases_s"].items()))
        log(f"    {loaded['allocated_share']:.0%} of cases allocated to {FACILITATORS} facilitators; clocks "
            f"{loaded['clocks_met_share']:.0%} met, {loaded['clocks_breached_share']:.0%} breached")

        big = big_tables(database_url)
        db = Database(database_url, "cases")
        store = PlatformStore(db, platform, "cases")
        uows = UnitsOfWork(lambda: CasesUnitOfWork(db, store))
        captured = Captured(db)
        rng = random.Random(seed + 1)
        results = []
        for name, make in shapes(rng, loaded["facilitators"]).items():
            gen = make()
            args = next(gen)
            latencies: list[float] = []
            rows: list[int] = []
            last_pages: list[float] = []
            wall = cpu = 0.0
            for n in range(warmup + calls):
                principal, kwargs, page = args
                start, start_cpu = time.perf_counter(), time.process_time()
                shown, token = services.list_cases(uows, principal, **kwargs)
                took = time.perf_counter() - start
                if n >= warmup:
                    cpu += time.process_time() - start_cpu
                    latencies.append(took)
                    rows.append(len(shown))
                    wall += took
                    if page == PAGES - 1:
                        last_pages.append(took)
                args = gen.send(token)
            # The plans: one more call of the shape (for deep pagination, its last page), captured.
            gen = make()
            args = next(gen)
            while True:
                principal, kwargs, page = args
                deepest = page == PAGES - 1 or "pagination" not in name
                captured.on, captured.statements = deepest, []
                shown, token = services.list_cases(uows, principal, **kwargs)
                captured.on = False
                if deepest:
                    break
                args = gen.send(token)
            plans = explain(db, captured.statements)
            search_plan = plans[0] if plans else ["(no statement)"]
            seq_scans = seq_scans_on(big, captured.statements, plans)
            results.append({
                "shape": name, "calls": len(latencies),
                "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
                "mean_ms": mean(latencies) * 1000 if latencies else float("nan"),
                "calls_per_s": len(latencies) / wall if wall else float("nan"),
                "client_cpu_ms": cpu / max(len(latencies), 1) * 1000,
                "rows_avg": mean(rows) if rows else 0.0,
                "last_page_p50_ms": percentile(last_pages, 50) * 1000 if last_pages else None,
                "last_page_calls": len(last_pages),
                "plan_top": search_plan[0].strip(),
                "plan_scans": [line.strip().lstrip("-> ") for line in search_plan if "Scan" in line],
                "search_sql": captured.statements[0][0] if captured.statements else "",
                "seq_scans": seq_scans,
            })
        return {"cases": cases, "load_s": load_s, "vacuum_analyze_s": analyze_s, "migrate_s": migrate_s,
                "rows": loaded["rows"], "calls_per_shape": calls, "warmup_per_shape": warmup, "shapes": results,
                "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_mib": _rss_mib(),
                "maxrss_before_mib": rss0 / 1024}
    finally:
        if db is not None:
            db.dispose()
        if keep:
            log(f"    kept the database: {make_url(database_url).render_as_string(hide_password=True)}")
        else:
            try:
                _drop(database_url)
            except Exception:
                pass


def report(result: dict, explain_plans: bool = False, out=print) -> None:
    out(f"    {'shape':44s} {'p50 ms':>8s} {'p99 ms':>8s} {'mean ms':>8s} {'calls/s':>8s} {'rows':>6s} "
        f"{'our CPU ms':>10s}")
    for s in result["shapes"]:
        out(f"    {s['shape']:44s} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f} {s['mean_ms']:8.2f} "
            f"{s['calls_per_s']:8.1f} {s['rows_avg']:6.1f} {s['client_cpu_ms']:10.2f}")
        if s["last_page_p50_ms"] is not None:
            out(f"      (page {PAGES} alone: p50 {s['last_page_p50_ms']:.2f} ms over {s['last_page_calls']} walks)")
        if explain_plans:
            out(f"      plan: {s['plan_top']}")
            for scan in s["plan_scans"]:
                out(f"            {scan}")
        for found in s["seq_scans"]:
            out(f"      SEQ SCAN on a big table, in the query on {found['query_on']}: {found['scan']}")
    out(f"    process RSS           {result['rss_mib']:.0f} MiB after the searches, peak {result['maxrss_mib']:.0f} MiB "
        f"(maxrss; {result['maxrss_before_mib']:.0f} MiB before loading)")
    out(f"    ({result['calls_per_shape']} timed calls a shape after {result['warmup_per_shape']} warm-up, one thread, "
        f"each call commits its audit row; 'our CPU' is this process's CPU per call, the rest of the wall "
        f"time is PostgreSQL and waiting)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=300, help="timed calls per shape")
    parser.add_argument("--warmup", type=int, default=30, help="untimed calls per shape first")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 5,000 cases, 50 calls a shape")
    parser.add_argument("--database-url", default=None,
                        help="the database to (re)create and fill (default: a new mend_bench_cases_<random> on "
                             "the test server); dropped at the end unless --keep")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--explain", action="store_true", help="print each shape's plan (top line and scans)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="then all figures as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.cases, args.calls, args.warmup = 5_000, 50, 10
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    print(f"case search at {args.cases} cases (services.list_cases on PostgreSQL, {args.calls} calls a shape)")
    result = measure(cases=args.cases, calls=args.calls, warmup=args.warmup, database_url=args.database_url,
                     keep=args.keep, seed=args.seed)
    report(result, explain_plans=args.explain)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
