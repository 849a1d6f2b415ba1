"""End-to-end referral intake under load: concurrent gRPC clients submit referrals to a region
running on PostgreSQL; each referral must travel through the outbox, RabbitMQ and the cases
worker into an open case. Prints throughput, submit latency, time until the case is opened
and memory. A benchmark, not a test: nothing here passes or fails on time."""
from __future__ import annotations

import argparse
import asyncio
import resource
import json
import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import grpc
import psycopg

from mend.referrals.v1 import referrals_pb2, referrals_pb2_grpc
from mend_cli.pytest_stack import make_tenant, referral_draft
from mend_cli.stack import MendStack
from mend_common.proto_convert import plain_to_message
from mend_common.testing.plugin import PG_ADMIN_URL, PostgresDatabase, RabbitVhost


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        import os
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError):
        return float("nan")


def infrastructure_pids() -> dict[str, list[int]]:
    """PostgreSQL and RabbitMQ processes on this machine (their CPU is part of each referral)."""
    found: dict[str, list[int]] = {"postgresql": [], "rabbitmq": []}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm in ("postgres", "postmaster"):
            found["postgresql"].append(int(entry.name))
        elif comm.startswith("beam") or comm in ("epmd", "erl_child_setup"):
            found["rabbitmq"].append(int(entry.name))
    return found


def run_load(target: str, api_key: str, county: str, clients: int, seconds: float, warmup: float):
    """Closed loop: each of `clients` concurrent callers submits, waits for the answer, submits
    again. One asyncio thread drives them all (grpc.aio), so the load generator takes as little
    as possible of the CPU it shares with the system under test."""
    return asyncio.run(_run_load(target, api_key, county, clients, seconds, warmup))


async def _run_load(target, api_key, county, clients, seconds, warmup):
    template = referrals_pb2.SubmitReferralRequest()
    plain_to_message(referral_draft(county), template.referral)
    metadata = (("x-api-key", api_key),)
    results: list[tuple[float, float, str]] = []   # (start, latency, referral_id) in the measured window
    errors: list[str] = []
    calls = 0
    measure_from = time.monotonic() + warmup
    stop_at = measure_from + seconds

    async with grpc.aio.insecure_channel(target) as channel:
        stub = referrals_pb2_grpc.ReferralServiceStub(channel)

        async def client(n: int) -> None:
            nonlocal calls
            i = 0
            while (t0 := time.monotonic()) < stop_at:
                request = referrals_pb2.SubmitReferralRequest()
                request.CopyFrom(template)
                request.request_id = f"bench-{n}-{i}-{uuid.uuid4().hex[:8]}"
                request.referral.agency_reference = f"B/{n}/{i}/{uuid.uuid4().hex[:6]}"
                i += 1
                calls += 1
                try:
                    reply = await stub.SubmitReferral(request, metadata=metadata, timeout=10)
                except grpc.aio.AioRpcError as exc:
                    errors.append(exc.code().name)
                    continue
                if t0 >= measure_from:
                    results.append((t0, time.monotonic() - t0, reply.referral_id))

        await asyncio.gather(*(client(n) for n in range(clients)))
    return results, errors, seconds, calls


def run_offered_load(target: str, api_key: str, county: str, rate: float, seconds: float, seed: int = 7):
    """Open loop: referrals arrive at `rate` per second (Poisson arrivals, fixed seed), each sent
    at its arrival time whether or not earlier ones have been answered, as partner agencies'
    systems would. Latency counts from the arrival time, so a backlog shows in the figures
    instead of silently slowing the arrivals (no coordinated omission)."""
    return asyncio.run(_run_offered_load(target, api_key, county, rate, seconds, seed))


async def _run_offered_load(target, api_key, county, rate, seconds, seed):
    import random
    rng = random.Random(seed)
    template = referrals_pb2.SubmitReferralRequest()
    plain_to_message(referral_draft(county), template.referral)
    metadata = (("x-api-key", api_key),)
    latencies: list[float] = []
    ids: list[str] = []
    errors: list[str] = []

    async with grpc.aio.insecure_channel(target) as channel:
        stub = referrals_pb2_grpc.ReferralServiceStub(channel)

        async def one(n: int, arrival: float) -> None:
            request = referrals_pb2.SubmitReferralRequest()
            request.CopyFrom(template)
            request.request_id = f"open-{n}-{uuid.uuid4().hex[:8]}"
            request.referral.agency_reference = f"O/{n}/{uuid.uuid4().hex[:6]}"
            try:
                reply = await stub.SubmitReferral(request, metadata=metadata, timeout=10)
            except grpc.aio.AioRpcError as exc:
                errors.append(exc.code().name)
                return
            latencies.append(time.monotonic() - arrival)
            ids.append(reply.referral_id)

        tasks = []
        start = time.monotonic()
        arrival, n = start, 0
        while arrival < start + seconds:
            delay = arrival - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n, arrival)))
            n += 1
            arrival += rng.expovariate(rate)
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    return {"offered_per_s": rate, "sent": n, "answered": len(latencies), "errors": len(errors),
            "error_codes": sorted(set(errors)), "answered_per_s": len(latencies) / elapsed,
            "p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000,
            "max_ms": max(latencies) * 1000 if latencies else float("nan"), "referral_ids": ids}


def case_open_delays(database_url: str, referral_ids: set[str], timeout: float) -> tuple[list[float], int]:
    """Seconds from a referral being stored to its case being opened, for the measured ones."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            rows = conn.execute(
                "SELECT r.referral_id, EXTRACT(EPOCH FROM (c.opened_at - r.received_at)) "
                "FROM referrals.referrals r JOIN cases.cases c ON c.referral_id = r.referral_id "
                "WHERE r.referral_id = ANY(%s)", (list(referral_ids),)).fetchall()
            if len(rows) >= len(referral_ids) or time.monotonic() > deadline:
                return [float(r[1]) for r in rows], len(rows)
            time.sleep(0.5)


def measure(amqp_base: str = "amqp://guest:guest@127.0.0.1:5672", clients: int = 32, seconds: float = 20.0,
            warmup: float = 3.0, case_workers: int = 1, relay_in_api: bool = True, grpc_threads: int = 8,
            offered_rate: float | None = None, offered_seconds: float = 20.0,
            sweep: tuple[int, ...] = (), sweep_seconds: float = 15.0, env: dict[str, str] | None = None) -> dict:
    """Phase 1, saturation: `clients` closed-loop callers submit as fast as they are answered
    (CPU and memory are measured over this phase).
    Then, for each number in sweep, the same with that many callers: throughput against latency.
    Last, if offered_rate is given: that many referrals per second arrive (open loop), and
    their latency is measured at that load."""
    vhost = RabbitVhost(f"mend-bench-{uuid.uuid4().hex[:8]}").create()
    database = PostgresDatabase(f"mend_bench_{uuid.uuid4().hex[:8]}").create()
    stack = MendStack(var_dir=Path("var/bench") / vhost.name, amqp_uri=f"{amqp_base}/{vhost.name}",
                      database_url=database.url, workers={"cases": case_workers}, relay_in_api=relay_in_api,
                      extra_env={"MEND_LOG_LEVEL": "WARNING", "MEND_GRPC_THREADS": str(grpc_threads), **(env or {})})
    try:
        stack.start()
        tenant = make_tenant(stack)
        pids = {p.name: p.proc.pid for p in stack.group.processes}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        infra = infrastructure_pids()
        infra_before = {pid: cpu_seconds(pid) for ps in infra.values() for pid in ps}
        wall_start = time.monotonic()
        client_before = resource.getrusage(resource.RUSAGE_SELF)
        results, errors, window, all_calls = run_load(stack.grpc_target("referrals"), tenant.api_key, tenant.county,
                                           clients, seconds, warmup)
        client_after = resource.getrusage(resource.RUSAGE_SELF)
        client_cpu = (client_after.ru_utime - client_before.ru_utime) + (client_after.ru_stime - client_before.ru_stime)
        ids = {r[2] for r in results}
        delays, opened = case_open_delays(database.url, ids, timeout=120)
        wall = time.monotonic() - wall_start
        cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        # Per process, before and after; a backend that exited in between is not counted.
        infra_after = infrastructure_pids()
        infra_cpu = {name: round(sum(max(0.0, cpu_seconds(p) - infra_before.get(p, 0.0)) for p in ps
                                     if Path(f"/proc/{p}").exists()), 2) for name, ps in infra_after.items()}
        memory = {name: round(rss_mib(pid), 1) for name, pid in pids.items()}
        latencies = [r[1] for r in results]
        total_cpu = sum(cpu_after[n] - cpu_before[n] for n in pids)
        with psycopg.connect(database.url, autocommit=True) as conn:
            all_submitted = conn.execute("SELECT count(*) FROM referrals.referrals").fetchone()[0]
            all_cases = conn.execute("SELECT count(*) FROM cases.cases").fetchone()[0]
        curve = []
        for callers in sweep:
            level, level_errors, level_window, _ = run_load(stack.grpc_target("referrals"), tenant.api_key,
                                                            tenant.county, callers, sweep_seconds, 2.0)
            level_latencies = [r[1] for r in level]
            curve.append({"clients": callers, "submit_per_s": len(level) / level_window,
                          "p50_ms": percentile(level_latencies, 50) * 1000,
                          "p99_ms": percentile(level_latencies, 99) * 1000, "errors": len(level_errors)})
        offered = None
        if offered_rate:
            offered = run_offered_load(stack.grpc_target("referrals"), tenant.api_key, tenant.county,
                                       offered_rate, offered_seconds)
            offered_delays, offered_opened = case_open_delays(database.url, set(offered.pop("referral_ids")),
                                                              timeout=120)
            offered.update({"cases_opened": offered_opened,
                            "case_open_p99_ms": percentile(offered_delays, 99) * 1000})
        return {
            "offered_load": offered, "clients_curve": curve,
            "clients": clients, "window_s": window, "submitted_in_window": len(results),
            "errors": len(errors), "error_codes": sorted(set(errors)),
            "submit_per_s": len(results) / window,
            "submit_p50_ms": percentile(latencies, 50) * 1000, "submit_p99_ms": percentile(latencies, 99) * 1000,
            "cases_opened_of_window": opened,
            "case_open_p50_ms": percentile(delays, 50) * 1000, "case_open_p99_ms": percentile(delays, 99) * 1000,
            "case_open_max_ms": max(delays) * 1000 if delays else float("nan"),
            "all_referrals": all_submitted, "all_cases": all_cases,
            "service_cpu_s_per_referral_ms": total_cpu / max(all_submitted, 1) * 1000,
            "rss_mib": memory, "wall_s": wall,
            "cpu_s": {n: round(cpu_after[n] - cpu_before[n], 2) for n in pids},
            "infrastructure_cpu_s": infra_cpu,
            # The load generator shares the machine; its CPU is not the system's but competes with it.
            "client_cpu_ms_per_submit": client_cpu / max(all_calls, 1) * 1000,
            "all_cpu_s_per_referral_ms": (total_cpu + sum(infra_cpu.values())) / max(all_submitted, 1) * 1000,
        }
    finally:
        stack.stop()
        vhost.delete()
        try:
            database.drop()
        except Exception:
            pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--case-workers", type=int, default=1)
    parser.add_argument("--offered-rate", type=float, default=None, help="then measure latency at this rate")
    parser.add_argument("--sweep", type=int, nargs="*", default=[], help="then closed loops with these many clients")
    parser.add_argument("--env", action="append", default=[], metavar="MEND_X=VALUE",
                        help="a setting for every Mend process (to compare tunings)")
    parser.add_argument("--grpc-threads", type=int, default=8)
    parser.add_argument("--relay", choices=("api", "process"), default="api")
    args = parser.parse_args(argv)
    result = measure(clients=args.clients, seconds=args.seconds, case_workers=args.case_workers,
                     relay_in_api=args.relay == "api", grpc_threads=args.grpc_threads,
                     offered_rate=args.offered_rate, sweep=tuple(args.sweep),
                     env=dict(item.split("=", 1) for item in args.env))
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
