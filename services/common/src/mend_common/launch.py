"""Process entry points: mend-api, mend-worker, mend-relay, mend-migrate <service>.

Imports stay inside the functions: the worker must set up eventlet and psycopg's wait function
before anything else is imported."""
from __future__ import annotations

import os
import sys


def _service_arg(argv: list[str] | None, command: str) -> str:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        raise SystemExit(f"usage: {command} <service>   (for example: {command} referrals)")
    return args[0]


def _wait_for_signal():
    import signal
    import threading
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def migrate_main(argv: list[str] | None = None) -> None:
    from .config import load_settings
    from .logs import configure_logging
    from .migrations import upgrade
    from .registry import load_definition
    name = _service_arg(argv, "mend-migrate")
    settings = load_settings(name)
    configure_logging(name, "migrate", settings.log_level)
    upgrade(load_definition(name), settings.database_url)


def relay_main(argv: list[str] | None = None) -> None:
    import logging
    from .config import load_settings
    from .db import Database
    from .logs import configure_logging
    from .registry import load_definition
    from .relay import OutboxRelay, relay_retry_options
    name = _service_arg(argv, "mend-relay")
    settings = load_settings(name)
    configure_logging(name, "relay", settings.log_level)
    definition = load_definition(name)
    db = Database(settings.database_url, settings.schema, pool_size=2)
    relay = OutboxRelay(db, definition.platform, name, settings.amqp_uri, batch_size=settings.relay_batch_size,
                        linger_seconds=settings.relay_linger_ms / 1000, **relay_retry_options(settings)).start()
    logging.getLogger(__name__).info("outbox relay running")
    _wait_for_signal()
    relay.stop()
    db.dispose()


def api_main(argv: list[str] | None = None) -> None:
    import logging
    import threading
    import time

    import kombu
    import waitress

    from .auth import TokenVerifier
    from .config import load_settings
    from .db import Database
    from .grpc_server import build_server, set_serving
    from .http import JsonApp
    from .logs import configure_logging
    from .registry import ApiContext, load_definition
    from .relay import OutboxRelay, relay_retry_options

    name = _service_arg(argv, "mend-api")
    settings = load_settings(name)
    configure_logging(name, "api", settings.log_level)
    log = logging.getLogger("mend.api")
    definition = load_definition(name)
    db = Database(settings.database_url, settings.schema, pool_size=settings.db_pool_size)
    verifier = None
    if settings.token_public_key_file.exists():
        verifier = TokenVerifier.from_file(settings.token_public_key_file, settings.token_issuer)
    else:
        log.warning("no token public key at %s: staff bearer tokens will be refused", settings.token_public_key_file)
    parts = definition.build_api(ApiContext(settings, db, verifier))

    broker_check = {"at": 0.0, "ok": False}

    def broker_reachable() -> bool:
        if time.monotonic() - broker_check["at"] > 5:  # at most one probe connection per 5 s
            try:
                with kombu.Connection(settings.amqp_uri, connect_timeout=2) as conn:
                    conn.ensure_connection(max_retries=1, timeout=2)
                broker_check["ok"] = True
            except Exception:
                broker_check["ok"] = False
            broker_check["at"] = time.monotonic()
        return broker_check["ok"]

    # Readiness is about serving calls: a referral is stored even while the broker is down,
    # so the broker is reported but does not make the api unready.
    def readiness() -> dict[str, bool]:
        return {"database": db.ping()}

    app = JsonApp(name, parts.authenticator, parts.http_routes, readiness)
    http_server = waitress.create_server(app, host=settings.bind_host, port=settings.http_port, threads=8,
                                         ident="mend", channel_timeout=30)
    grpc_server, health_servicer, grpc_port = build_server(
        name, parts.authenticator, parts.grpc_registrars, host=settings.bind_host,
        port=settings.grpc_port, threads=settings.grpc_threads,
        max_concurrent_rpcs=settings.grpc_max_concurrent_rpcs)
    relay = None
    if settings.relay_enabled:
        relay = OutboxRelay(db, definition.platform, name, settings.amqp_uri, batch_size=settings.relay_batch_size,
                            linger_seconds=settings.relay_linger_ms / 1000, **relay_retry_options(settings)).start()
    grpc_server.start()
    threading.Thread(target=http_server.run, name="http", daemon=True).start()
    set_serving(health_servicer, parts.grpc_service_names, True)
    log.info("api ready: gRPC %s:%d, HTTP %s:%d, relay %s, broker reachable: %s", settings.bind_host, grpc_port,
             settings.bind_host, settings.http_port, "on" if relay else "off", broker_reachable())
    _wait_for_signal()
    log.info("stopping")
    set_serving(health_servicer, parts.grpc_service_names, False)
    grpc_server.stop(grace=5).wait(10)
    # Finish in-flight HTTP requests; the listening socket closes with the process (closing it
    # under waitress's running poll loop only raises EBADF in that loop).
    http_server.task_dispatcher.shutdown(timeout=5)
    if relay:
        relay.stop()
    db.dispose()


def worker_main(argv: list[str] | None = None) -> None:
    # psycopg must wait with select() (which eventlet makes cooperative) or one slow query
    # blocks every greenthread in the process.
    os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")
    import eventlet
    eventlet.monkey_patch()

    from nameko.cli.run import run

    from .config import load_settings
    from .logs import configure_logging
    from .registry import load_definition

    name = _service_arg(argv, "mend-worker")
    settings = load_settings(name)
    configure_logging(name, "worker", settings.log_level)
    definition = load_definition(name)
    config = {
        "AMQP_URI": settings.amqp_uri,
        "WEB_SERVER_ADDRESS": f"{settings.bind_host}:{settings.worker_http_port}",
        # Room for the batches in flight, their fallbacks and the health and metrics endpoints.
        "max_workers": max(settings.worker_max_concurrency, settings.event_batch_concurrency + 4),
        "SERIALIZER": "json",
        "MEND_DATABASE_URL": settings.database_url,
        "MEND_DB_SCHEMA": settings.schema,
        "MEND_DB_POOL_SIZE": max(settings.db_pool_size, settings.worker_max_concurrency + 2),
        "MEND_MAX_DELIVERY_ATTEMPTS": settings.max_delivery_attempts,
        "MEND_RETRY_DELAY_MS": settings.retry_delay_ms,
        "MEND_EVENT_BATCH_SIZE": settings.event_batch_size,
        "MEND_EVENT_BATCH_CONCURRENCY": settings.event_batch_concurrency,
        "MEND_EVENT_BATCH_LINGER_MS": settings.event_batch_linger_ms,
        "MEND_RPC_TIMEOUT": settings.amqp_timeout_seconds,
        "MEND_TOKEN_PUBLIC_KEY_FILE": str(settings.token_public_key_file),
        "MEND_TOKEN_ISSUER": settings.token_issuer,
        "MEND_SERVICE_TOKEN": settings.service_token,      # sent on this worker's own RPC calls
    }
    run([definition.worker_class()], config)
