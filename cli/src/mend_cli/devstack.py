"""`make run`: a demo region on this machine, every process printed, stopped cleanly on Ctrl-C."""
from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
from pathlib import Path

from .demo import EXAMPLE_REFERRAL, seed
from mend_common.testing.smtp_sink import SmtpSink

from .stack import SERVICES, MendStack

DEV_SMTP_PORT = 2525

DEV_VHOST = "mend-dev"
RABBIT_MANAGEMENT = "http://127.0.0.1:15672"


def dev_amqp_uri() -> str:
    """MEND_AMQP_URI if set; else the local broker's own "mend-dev" vhost, made if missing, so
    the demo region's queues and events never mix with anything else on the broker."""
    if os.environ.get("MEND_AMQP_URI"):
        return os.environ["MEND_AMQP_URI"]
    import requests
    try:
        auth = ("guest", "guest")
        requests.put(f"{RABBIT_MANAGEMENT}/api/vhosts/{DEV_VHOST}", auth=auth, timeout=10).raise_for_status()
        requests.put(f"{RABBIT_MANAGEMENT}/api/permissions/{DEV_VHOST}/guest", auth=auth, timeout=10,
                     json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    except requests.RequestException as exc:
        print(f"could not make the {DEV_VHOST} vhost ({exc}); using the default vhost", file=sys.stderr)
        return "amqp://guest:guest@127.0.0.1:5672/"
    return f"amqp://guest:guest@127.0.0.1:5672/{DEV_VHOST}"


def calendar_secret(var_dir: Path) -> str:
    """MEND_SCHEDULING_CALENDAR_SECRET if set; else a random one kept in var/, so facilitators'
    calendar feed URLs stay the same from one `make run` to the next."""
    if os.environ.get("MEND_SCHEDULING_CALENDAR_SECRET"):
        return os.environ["MEND_SCHEDULING_CALENDAR_SECRET"]
    path = var_dir / "scheduling-calendar.secret"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "run"
    var_dir = Path(os.environ.get("MEND_VAR_DIR", "var")).resolve()
    mail = var_dir / "mail"
    # Unless a real relay is named, the demo's email goes to a local mail catcher: one .eml file
    # per message under var/mail/.
    smtp_env = {} if os.environ.get("MEND_SMTP_HOST") else {"MEND_SMTP_HOST": "127.0.0.1",
                                                            "MEND_SMTP_PORT": str(DEV_SMTP_PORT)}
    stack = MendStack(var_dir=var_dir, amqp_uri=dev_amqp_uri(),
                      database_url=os.environ.get("MEND_DATABASE_URL") or None, fixed_ports=True,
                      extra_env=dict(smtp_env, MEND_SCHEDULING_CALENDAR_SECRET=calendar_secret(var_dir)))
    if command == "migrate":
        stack.migrate()
        print("migrated:", ", ".join(SERVICES))
        return 0
    if command != "run":
        print("usage: python -m mend_cli.devstack [run|migrate]", file=sys.stderr)
        return 2

    print(f"Mend: starting {', '.join(SERVICES)} (database: {stack.database_url or 'SQLite files in ' + str(var_dir)}; "
          f"broker: {stack.amqp_uri.rsplit('@', 1)[-1]})")
    catcher = None
    if smtp_env:
        mail.mkdir(parents=True, exist_ok=True)
        catcher = SmtpSink(DEV_SMTP_PORT, keep_messages=False, on_message=lambda msg, *_: (
            mail / f"{str(msg['Message-ID']).strip('<>').replace('/', '_')}.eml").write_bytes(msg.as_bytes())).start()
    stack.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        creds = seed(stack, var_dir / "demo-credentials.json")
        example = var_dir / "example-referral.json"
        example.write_text(json.dumps(EXAMPLE_REFERRAL, indent=2))
        print("\nEndpoints")
        for name in SERVICES:
            p = stack.ports[name]
            print(f"  {name:10} gRPC {stack.grpc_target(name)}   HTTP {stack.http_base(name)} "
                  f"(/healthz /readyz /metrics)   worker http://127.0.0.1:{p.worker_http[0]}/metrics")
        print(f"  OpenAPI    {stack.http_base('referrals')}/v1/openapi.yaml")
        if catcher is not None:
            print(f"  mail       SMTP 127.0.0.1:{DEV_SMTP_PORT}, each message saved under {mail}")
        print("\nPartner agencies (demo API keys; send as the x-api-key header)")
        for name, a in creds["agencies"].items():
            print(f"  {name} [{a['county']}, {a['kind']}]\n      {a['api_key']}")
        print("\nStaff (bearer tokens, valid 1 hour; `mend token issue` makes more)")
        for subject, s in creds["staff"].items():
            print(f"  {subject}: {s['name']} {s['roles']} {s['counties']}")
        print(f"\nAll credentials: {var_dir / 'demo-credentials.json'}   logs: {var_dir / 'logs'}")
        key = creds["agencies"]["Cumbria Constabulary"]["api_key"]
        print("\nTry it:")
        print(f"  export MEND_API_KEY={key}")
        print(f"  .venv/bin/mend referral submit {example}")
        print(f"  curl -s -X POST {stack.http_base('referrals')}/v1/referrals -H 'Content-Type: application/json' "
              f"-H \"x-api-key: $MEND_API_KEY\" -H 'Idempotency-Key: demo-0001-abcd' -d @{example}")
        print("  export MEND_TOKEN=$(.venv/bin/mend token issue --roles coordinator --county cumbria)")
        print("  .venv/bin/mend cases list")
        print("  .venv/bin/mend risk rules")
        print("\nRunning. Ctrl-C stops everything.")
        while not stop.wait(1.0):
            dead = [p.name for p in stack.group.processes if p.proc.poll() is not None]
            if dead:
                print(f"process(es) stopped unexpectedly: {', '.join(dead)}; see {var_dir / 'logs'}", file=sys.stderr)
                return 1
    finally:
        print("\nstopping...")
        stack.stop()
        if catcher is not None:
            catcher.stop()
        print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
