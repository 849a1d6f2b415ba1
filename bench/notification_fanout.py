"""Notification fan-out: meeting reminders from a real region to a local SMTP server, then the
same with one notifications worker killed (SIGKILL) a third of the way through and restarted.

Each run: an SMTP sink of its own (mend_common.testing.smtp_sink, a separate process recording
one JSON line per accepted message), a region (MendStack) on a private PostgreSQL database and
RabbitMQ vhost with two notifications worker processes, the reminder sweep every second and
the dispatcher every 0.2 s. Once every process is ready, 50 facilitators' staff contacts are
stored, then N meetings (default 10,000) are inserted into the notifications `meetings` table in
ONE transaction, as the scheduling service's events would have left them: starting in 47 hours,
so the 48-hour reminder is due at once, one facilitator each, no participants, cases drawn from
500 random ids. The clock starts when that transaction commits (the workers are already running
and sweep on their own timers).

Figures: the time until the sink holds N distinct Message-IDs and the throughput; how long the
sweep took to queue the messages; p50/p99 from a message being queued (messages.created_at) to
the sink accepting it; RSS and CPU of the workers; the messages' statuses at the end. The kill
run reports what arrived, duplicates (lines at the sink minus distinct ids) and lost (N minus
distinct ids), and waits until the sink is quiet and no message is queued or being sent.

Limitations: facilitators only. Participants' contacts come from the cases service and these
cases do not exist there, so every lookup answers "not found" (its real cost, one RPC per case
per sweep, is paid; the messages to participants are not). A benchmark: it prints figures and
never fails on time; it exits non-zero only if a message is lost."""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
from sqlalchemy import insert

from mend_cli.stack import MendStack
from mend_common.db import Database
from mend_common.testing.plugin import PostgresDatabase, RabbitVhost
from mend_notifications.adapters.tables import meetings as meetings_table, staff_contacts

COUNTY = "west-yorkshire"
KINDS = ("preparation_visit", "conference", "indirect_session", "pre_prison_visit")
WORKERS = ("notifications-worker", "notifications-worker-1")     # MendStack._add names: index 0 has no suffix
CHANNEL_TIMEOUT_S = 5.0     # the local sink answers in milliseconds; the lease must exceed twice this


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _proc_status(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def lease_setting_supported() -> bool:
    """Whether this notifications service reads MEND_NOTIFY_LEASE_SECONDS (how long a claimed
    message waits before another dispatcher takes it up after a crash)."""
    try:
        from mend_notifications.bootstrap import notify_settings
        settings = notify_settings({"MEND_NOTIFY_LEASE_SECONDS": "17",
                                    "MEND_NOTIFY_CHANNEL_TIMEOUT_SECONDS": str(CHANNEL_TIMEOUT_S)})
        return abs(settings.rules.lease_seconds - 17) < 1e-9
    except Exception:   # noqa: BLE001 - an older service without the setting, or one that refuses it
        return False


# -- the SMTP sink, a process of its own ------------------------------------------------------------
class Sink:
    def __init__(self, record: Path):
        self.record = record
        self.proc = subprocess.Popen([sys.executable, "-m", "mend_common.testing.smtp_sink", "--port", "0",
                                      "--record", str(record)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"the SMTP sink did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class SinkRecord:
    """Follows the sink's JSON-lines file: lines so far and each Message-ID's first arrival."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = b""
        self.lines = 0
        self.first: dict[str, float] = {}
        self.seen: dict[str, int] = {}
        self.last_growth = time.monotonic()

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return 0
        if not data:
            return 0
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        for line in complete:
            if not line.strip():
                continue
            record = json.loads(line)
            message_id = record["message_id"].strip().strip("<>").split("@", 1)[0]
            self.lines += 1
            self.first.setdefault(message_id, float(record["received_at"]))
            self.seen[message_id] = self.seen.get(message_id, 0) + 1
        self.last_growth = time.monotonic()
        return len(complete)

    @property
    def distinct(self) -> int:
        return len(self.first)


# -- the data ---------------------------------------------------------------------------------------
def seed_staff(db: Database, facilitators: int) -> list[str]:
    subjects = [f"staff-fac-{i:03d}" for i in range(facilitators)]
    with db.transaction() as conn:
        conn.execute(insert(staff_contacts).values([
            {"county": COUNTY, "subject": s, "name": f"Facilitator {i:03d}",
             "email": f"facilitator{i:03d}@{COUNTY}.rj.example.org", "roles": json.dumps(["facilitator"]),
             "language": "en", "active": True} for i, s in enumerate(subjects)]))
    return subjects


def meeting_rows(n: int, facilitators: list[str], cases: int, rng: random.Random, now: datetime) -> list[dict]:
    case_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(cases)]
    rows = []
    for i in range(n):
        starts = now + timedelta(hours=47, minutes=rng.randint(0, 50))
        rows.append({
            "meeting_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "case_id": rng.choice(case_ids),
            "county": COUNTY, "kind": rng.choice(KINDS), "starts_at": starts, "ends_at": starts + timedelta(hours=2),
            "venue_name": f"Community Centre {i % 40}", "venue_address": f"{1 + i % 200} High Street, Leeds LS1 {i % 9}AB",
            "participant_ids": "[]", "facilitator_ids": json.dumps([rng.choice(facilitators)]),
            "status": "scheduled", "sequence": 0, "reminders_done": "[]",
            # The 48-hour reminder is due now (starts_at - 48 h is an hour or less ago).
            "next_reminder_at": starts - timedelta(hours=48), "updated_at": now})
    return rows


def seed_meetings(db: Database, rows: list[dict], chunk: int = 2000) -> float:
    """All meetings in ONE transaction (a multi-row INSERT per `chunk` rows); returns the wall
    time (time.time()) right after the commit: the start of the fan-out."""
    with db.transaction() as conn:
        for start in range(0, len(rows), chunk):
            conn.execute(insert(meetings_table).values(rows[start:start + chunk]))
    return time.time()


def db_state(url: str) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM notifications.messages GROUP BY status").fetchall())
        due = conn.execute("SELECT count(*) FROM notifications.meetings WHERE status = 'scheduled' "
                           "AND next_reminder_at <= now() AND starts_at > now()").fetchone()[0]
    return {"statuses": statuses, "meetings_due": due}


def outbox_left(url: str) -> dict[str, int]:
    """Events still in the notifications outbox (not yet published, or not routed)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return dict(conn.execute("SELECT event_type, count(*) FROM notifications.outbox GROUP BY event_type"
                                 ).fetchall())


def stuck_claims(url: str, before: datetime) -> int:
    """Messages still 'sending' under a claim taken before `before` (the killed worker's)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM notifications.messages WHERE status = 'sending' "
                            "AND claimed_until <= %s", (before,)).fetchone()[0]


def message_times(url: str) -> dict[str, tuple[float, float | None]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {r[0]: (r[1].timestamp(), r[2].timestamp() if r[2] else None) for r in conn.execute(
            "SELECT message_id, created_at, sent_at FROM notifications.messages")}


def contact_lookups(url: str) -> int:
    """Participant-contact lookups the cases service answered (each one audited)."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute("SELECT count(*) FROM cases.audit_log WHERE action LIKE 'case.contacts_read%'"
                                ).fetchone()[0]
    except psycopg.Error:
        return -1


_VARYING = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|0x[0-9a-f]+|\b\d+\b")


def log_findings(logs: Path, limit: int = 6) -> dict:
    """WARNING and ERROR lines and tracebacks per log file, and the commonest distinct messages
    (ids and numbers masked) with their counts."""
    counts: dict[str, dict[str, int]] = {}
    kinds: dict[str, int] = {}
    for path in sorted(logs.glob("*.log")):
        found = {"errors": 0, "warnings": 0, "tracebacks": 0}
        for line in path.read_text(errors="replace").splitlines():
            if "Traceback (most recent call last)" in line:
                found["tracebacks"] += 1
            try:
                record = json.loads(line)
                level, text = record.get("level", ""), f"{record.get('logger', '')}: {record.get('message', '')}"
            except (ValueError, AttributeError):
                continue
            if level in ("ERROR", "CRITICAL"):
                found["errors"] += 1
            elif level == "WARNING":
                found["warnings"] += 1
            else:
                continue
            key = f"{path.stem} {level} {_VARYING.sub('#', text)[:200]}"
            kinds[key] = kinds.get(key, 0) + 1
        if any(found.values()):
            counts[path.stem] = found
    commonest = sorted(kinds.items(), key=lambda kv: -kv[1])[:limit]
    return {"by_log": counts, "samples": [f"{n} x {key}" for key, n in commonest]}


# -- one run ------------------------------------------------------------------------------------------
def run_once(n: int, *, kill: bool, facilitators: int = 50, cases: int = 500, lease_seconds: float | None = 15.0,
             timeout: float | None = None, quiet_seconds: float = 3.0, seed: int = 7,
             amqp_base: str = "amqp://guest:guest@127.0.0.1:5672", log=print) -> dict:
    tag = uuid.uuid4().hex[:8]
    var_dir = Path("var/bench") / f"fanout-{'kill' if kill else 'clean'}-{tag}"
    var_dir.mkdir(parents=True, exist_ok=True)
    record = var_dir / "smtp-sink.jsonl"
    env = {"MEND_LOG_LEVEL": "WARNING", "MEND_NOTIFY_REMINDER_SWEEP_SECONDS": "1",
           "MEND_NOTIFY_DISPATCH_SECONDS": "0.2", "MEND_NOTIFY_WEBHOOK_PUBLIC_ONLY": "false",
           "MEND_NOTIFY_CHANNEL_TIMEOUT_SECONDS": str(CHANNEL_TIMEOUT_S)}
    lease = 60.0
    if lease_seconds is not None:
        env["MEND_NOTIFY_LEASE_SECONDS"] = str(lease_seconds)
        lease = lease_seconds
    timeout = timeout or (180.0 + n / 20 + 3 * lease)
    sink = vhost = database = stack = db = None
    restarter: threading.Thread | None = None
    try:
        sink = Sink(record)
        vhost = RabbitVhost(f"mend-bench-fanout-{tag}").create()
        database = PostgresDatabase(f"mend_bench_fanout_{tag}").create()
        env.update({"MEND_SMTP_HOST": "127.0.0.1", "MEND_SMTP_PORT": str(sink.port)})
        stack = MendStack(var_dir=var_dir, amqp_uri=f"{amqp_base}/{vhost.name}", database_url=database.url,
                          workers={"notifications": 2}, extra_env=env)
        t_start = time.monotonic()
        stack.start()
        startup_s = time.monotonic() - t_start
        db = Database(database.url, "notifications", pool_size=2)
        subjects = seed_staff(db, facilitators)
        rows = meeting_rows(n, subjects, cases, random.Random(seed), datetime.now(timezone.utc))
        t0 = seed_meetings(db, rows)
        del rows
        log(f"    region up in {startup_s:.1f} s; {n} meetings committed, fan-out started"
            + (" (will SIGKILL notifications-worker at a third)" if kill else ""))

        tail = SinkRecord(record)
        pids = {name: stack.process(name).proc.pid for name in WORKERS}
        # The api process runs the outbox relay (notification_sent events); cases answers the lookups.
        others = {"notifications-api": stack.process("notifications-api").proc.pid,
                  "cases-worker": stack.process("cases-worker").proc.pid, "smtp-sink": sink.proc.pid}
        cpu_before = {name: cpu_seconds(pid) for name, pid in {**pids, **others}.items()}
        rss_peak = {name: 0.0 for name in WORKERS}
        killed_at = restart_s = None
        kill_wall = None
        stuck = None
        restart_error: list[BaseException] = []
        state = {"statuses": {}, "meetings_due": -1}
        timeline: list[tuple[float, int, int, int]] = []   # (s, messages committed, sent, distinct at sink)
        next_db_check = next_progress = 0.0
        deadline = time.monotonic() + timeout
        finished = False
        timed_out = False
        while True:
            now = time.monotonic()
            tail.poll()
            for name in WORKERS:
                proc = stack.process(name).proc
                if proc is not None and proc.poll() is None:
                    rss_peak[name] = max(rss_peak[name], _proc_status(proc.pid, "VmRSS"))
            if kill and killed_at is None and tail.distinct >= n / 3:
                victim = stack.process(WORKERS[0])
                kill_wall = datetime.now(timezone.utc)
                victim.kill()
                killed_at = time.time()
                log(f"    SIGKILL {WORKERS[0]} at {killed_at - t0:.1f} s ({tail.distinct} distinct messages at the sink)")

                def restart():
                    nonlocal restart_s
                    started = time.monotonic()
                    try:
                        stack.restart(WORKERS[0])
                    except BaseException as exc:  # noqa: BLE001 - reported
                        restart_error.append(exc)
                    restart_s = time.monotonic() - started
                restarter = threading.Thread(target=restart, daemon=True)
                restarter.start()
            if stuck is None and killed_at is not None and time.time() - killed_at >= 3.0:
                # Claims taken before the kill (their lease ends by kill + lease) still unsettled
                # 3 s later: the killed worker's batch, waiting for the lease to lapse.
                stuck = stuck_claims(database.url, kill_wall + timedelta(seconds=lease + 0.5))
            if now >= next_progress:
                next_progress = now + 10.0
                log(f"      {time.time() - t0:6.1f} s: {tail.distinct} distinct, {tail.lines} lines at the sink")
            if now >= next_db_check:
                next_db_check = now + 1.0
                state = db_state(database.url)
                queued_total = sum(state["statuses"].values())
                timeline.append((round(time.time() - t0, 1), queued_total, state["statuses"].get("sent", 0),
                                 tail.distinct))
                settled = (state["meetings_due"] == 0 and sum(state["statuses"].values()) > 0
                           and not state["statuses"].get("queued") and not state["statuses"].get("sending"))
                restarted = restarter is None or not restarter.is_alive()
                # Done: nothing queued, being sent or due, the restart over and the sink quiet
                # (so a late repeat is still counted).
                if settled and restarted and now - tail.last_growth >= quiet_seconds:
                    finished = True
                    break
            if now > deadline:
                timed_out = True
                break
            time.sleep(0.25)
        t_end = time.time()
        tail.poll()
        rss_end = {}
        hwm_end = {}
        for name in WORKERS:
            proc = stack.process(name).proc
            pid = proc.pid if proc is not None else -1
            rss_end[name] = round(_proc_status(pid, "VmRSS"), 1)
            hwm_end[name] = round(_proc_status(pid, "VmHWM"), 1)
        # CPU over the fan-out; a restarted worker's is its new process's since it started.
        pids_end = {**{name: (stack.process(name).proc.pid if stack.process(name).proc else -1) for name in WORKERS},
                    **others}
        cpu_s = {name: round(cpu_seconds(pids_end[name]) - (cpu_before[name] if pids_end[name] == pid else 0.0), 2)
                 for name, pid in {**pids, **others}.items()}
        state = db_state(database.url)
        times = message_times(database.url)
        lookups = contact_lookups(database.url)
        outbox = outbox_left(database.url)
    finally:
        if db is not None:
            db.dispose()
        if restarter is not None:
            restarter.join(90)
        if stack is not None:
            stack.stop()
        if sink is not None:
            sink.stop()
        if vhost is not None:
            vhost.delete()
        if database is not None:
            try:
                database.drop()
            except Exception:  # noqa: BLE001
                pass

    arrivals = sorted(tail.first.values())
    distinct = tail.distinct
    all_in_s = arrivals[n - 1] - t0 if distinct >= n else None
    created = [c for c, _ in times.values()]
    sent = [s for _, s in times.values() if s is not None]
    latencies = [tail.first[m] - c for m, (c, _) in times.items() if m in tail.first]
    unknown_at_sink = sum(1 for m in tail.first if m not in times)
    last_activity = max([*sent, *(arrivals[-1:] or [t0])])
    # When the sweep's transactions had made the messages visible (1 s samples).
    committed_first = next((t for t, q, _, _ in timeline if q > 0), None)
    committed_all = next((t for t, q, _, _ in timeline if q >= n), None)
    at_all = next(((q, sent_n, d) for t, q, sent_n, d in timeline if q >= n), None)
    result = {
        "meetings": n, "facilitators": facilitators, "cases": cases, "workers": 2, "kill": kill,
        "lease_s": lease, "lease_setting_used": lease_seconds is not None,
        "startup_s": round(startup_s, 1), "finished": finished, "timed_out": timed_out, "timeout_s": timeout,
        "messages_queued": len(times), "sink_lines": tail.lines, "distinct": distinct,
        "duplicates": tail.lines - distinct, "ids_repeated": sum(1 for c in tail.seen.values() if c > 1),
        "lost": max(0, n - distinct), "unknown_at_sink": unknown_at_sink,
        "all_distinct_in_s": all_in_s, "messages_per_s": n / all_in_s if all_in_s else None,
        "first_at_sink_s": arrivals[0] - t0 if arrivals else None,
        "last_at_sink_s": arrivals[-1] - t0 if arrivals else None,
        "sink_quiet_and_settled_s": round(t_end - t0, 1),
        "complete_s": last_activity - t0,
        "last_sweep_started_s": max(created) - t0 if created else None,
        "first_committed_s": committed_first, "all_committed_s": committed_all,
        "at_sink_when_all_committed": at_all[2] if at_all else None,
        "dispatch_only_per_s": ((n - at_all[2]) / (all_in_s - committed_all)
                                if at_all and all_in_s and all_in_s > committed_all and n > at_all[2] else None),
        "timeline": timeline, "outbox_left": outbox,
        "queued_to_sink_p50_ms": percentile(latencies, 50) * 1000,
        "queued_to_sink_p99_ms": percentile(latencies, 99) * 1000,
        "queued_to_sink_max_ms": max(latencies) * 1000 if latencies else float("nan"),
        "statuses": dict(sorted(state["statuses"].items())), "meetings_still_due": state["meetings_due"],
        "rss_mib_end": rss_end, "rss_mib_peak_sampled": {k: round(v, 1) for k, v in rss_peak.items()},
        "vmhwm_mib_end": hwm_end, "cpu_s": cpu_s, "contact_lookups": lookups,
        "logs": str(var_dir / "logs"), "log_findings": log_findings(var_dir / "logs"),
    }
    if kill:
        result.update({"killed": WORKERS[0], "killed_at_s": killed_at - t0 if killed_at else None,
                       "restart_s": restart_s, "restart_error": repr(restart_error[0]) if restart_error else "",
                       "claims_waiting_for_lease_after_kill": stuck})
    return result


def measure(meetings: int = 10_000, kill: bool = True, lease_seconds: float | None = 15.0, log=print,
            **kwargs) -> dict:
    """The clean run, then (kill=True) the kill run, each on a fresh region."""
    supported = lease_setting_supported()
    if lease_seconds is not None and not supported:
        log("    (this notifications service has no MEND_NOTIFY_LEASE_SECONDS: the default 60 s lease applies)")
        lease_seconds = None
    log(f"    clean run: {meetings} meetings")
    clean = run_once(meetings, kill=False, lease_seconds=lease_seconds, log=log, **kwargs)
    killed = None
    if kill:
        log(f"    kill run: {meetings} meetings")
        killed = run_once(meetings, kill=True, lease_seconds=lease_seconds, log=log, **kwargs)
    return {"meetings": meetings, "load_average_at_start": os.getloadavg()[0], "clean": clean, "kill": killed,
            "lost": clean["lost"] + (killed["lost"] if killed else 0),
            "limitations": "facilitators only: the 500 cases are unknown to the cases service (each lookup answers "
                           "not found), so no participant messages are sent"}


def _s(value, fmt="{:.1f} s") -> str:
    return "-" if value is None else fmt.format(value)


def report(result: dict, out=print) -> None:
    c = result["clean"]
    out(f"    clean run, {c['meetings']} meetings, 2 notifications workers, {c['facilitators']} facilitators, "
        f"{c['cases']} cases (region up in {c['startup_s']} s)")
    out(f"      all {c['meetings']} at the sink after   {_s(c['all_distinct_in_s'])}   "
        f"({_s(c['messages_per_s'], '{:.0f}')} messages/s from the commit of the meetings)")
    out(f"      sweep: messages committed first at ~{_s(c['first_committed_s'])}, all by ~{_s(c['all_committed_s'])} "
        f"(1 s samples; {c['at_sink_when_all_committed']} at the sink by then);  first at the sink "
        f"{_s(c['first_at_sink_s'])}")
    out(f"      dispatch alone          {_s(c['dispatch_only_per_s'], '{:.0f} messages/s')} once all were queued")
    out(f"      queued -> sink          p50 {c['queued_to_sink_p50_ms']:.0f} ms   p99 {c['queued_to_sink_p99_ms']:.0f} ms"
        f"   max {c['queued_to_sink_max_ms']:.0f} ms   (from messages.created_at, the start of the sweep that "
        f"queued it)")
    out(f"      received {c['distinct']} distinct of {c['sink_lines']} lines: duplicates {c['duplicates']}, "
        f"lost {c['lost']};  statuses {c['statuses']}")
    out(f"      worker RSS MiB          end {c['rss_mib_end']}, peak {c['vmhwm_mib_end']}")
    out(f"      CPU s                   {c['cpu_s']}")
    out(f"      contact lookups answered by cases: {c['contact_lookups']};  left in the notifications outbox: "
        f"{c['outbox_left'] or 'nothing'}")
    k = result.get("kill")
    if k:
        out(f"    kill run: SIGKILL {k['killed']} at {_s(k['killed_at_s'])}, restarted (ready in {_s(k['restart_s'])})"
            + (f" RESTART FAILED {k['restart_error']}" if k["restart_error"] else ""))
        out(f"      received {k['distinct']} distinct of {k['meetings']}, {k['sink_lines']} lines:  "
            f"duplicates {k['duplicates']}   lost {k['lost']}")
        out(f"      all distinct at the sink after {_s(k['all_distinct_in_s'])}; complete (last send settled) "
            f"{_s(k['complete_s'])}; lease {k['lease_s']:g} s"
            + ("" if k["lease_setting_used"] else " (the default: no MEND_NOTIFY_LEASE_SECONDS)"))
        out(f"      claims of the killed worker waiting for the lease: {k['claims_waiting_for_lease_after_kill']};  "
            f"statuses {k['statuses']}")
        out(f"      worker RSS MiB          end {k['rss_mib_end']};  left in the outbox: {k['outbox_left'] or 'nothing'}")
    for name, run in (("clean", c), ("kill", k)):
        if run and (run["log_findings"]["by_log"] or run["timed_out"] or run["meetings_still_due"]):
            out(f"    {name} run logs ({run['logs']}): {run['log_findings']['by_log']}"
                + (f"; TIMED OUT after {run['timeout_s']:.0f} s" if run["timed_out"] else "")
                + (f"; {run['meetings_still_due']} meetings still due" if run["meetings_still_due"] else ""))
            for line in run["log_findings"]["samples"]:
                out(f"      {line}")
    out(f"    ({result['limitations']})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meetings", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="1,000 meetings")
    parser.add_argument("--no-kill", action="store_true", help="the clean run only")
    parser.add_argument("--lease-seconds", type=float, default=15.0,
                        help="MEND_NOTIFY_LEASE_SECONDS for the workers (more than 2 x 5 s channel timeout)")
    parser.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds a run")
    parser.add_argument("--json", action="store_true", help="then all figures as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.meetings = 1_000
    if args.lease_seconds <= 2 * CHANNEL_TIMEOUT_S:
        parser.error(f"--lease-seconds must be more than {2 * CHANNEL_TIMEOUT_S:g} (twice the channel timeout)")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    print(f"notification fan-out: {args.meetings} meeting reminders to a local SMTP server")
    result = measure(meetings=args.meetings, kill=not args.no_kill, lease_seconds=args.lease_seconds,
                     timeout=args.timeout)
    report(result)
    print(f"    load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    if result["lost"]:
        print(f"LOST {result['lost']} message(s)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
