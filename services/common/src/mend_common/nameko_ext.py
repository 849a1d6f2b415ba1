"""nameko extensions: a reliable event handler (bounded retries, then a dead-letter queue), the
database dependency, correlation ids, and a worker base class with health and metrics.

Imported only by worker processes (eventlet)."""
from __future__ import annotations

import json
import os
import logging
import time
import traceback
from datetime import datetime, timezone
from functools import partial

import eventlet
import kombu
from kombu import Queue
from nameko.containers import ContainerBeingKilled
from nameko.events import EventHandler
from nameko.extensions import DependencyProvider
from nameko.exceptions import RemoteError, UnknownService
from nameko.messaging import QueueConsumer
from nameko.rpc import MethodProxy, RpcProxy, ServiceProxy
from nameko.web.handlers import http
from werkzeug.wrappers import Response

from .amqp import DEAD_LETTER_EXCHANGE, RETRY_EXCHANGE, declare_consumer_topology
from .db import Database
from .logs import correlation_id_var, new_correlation_id
from .outbox import PlatformStore
from .rpc import RpcError, RpcTimeout, ServiceUnavailable
from .tables import PlatformTables
from .uow import UnitsOfWork
from .metrics import (CONSUMER_LAG, DEAD_LETTERED, EVENT_BATCH_SIZE, EVENT_HANDLING, EVENTS_CONSUMED,
                      EVENTS_FAILED, exposition)

log = logging.getLogger(__name__)


def previous_attempts(headers: dict | None, queue_name: str) -> int:
    """How many times this message was already rejected from this queue (RabbitMQ's x-death)."""
    for death in (headers or {}).get("x-death") or []:
        if death.get("queue") == queue_name and death.get("reason") == "rejected":
            return int(death.get("count", 0))
    return 0


class ReliableQueueConsumer(QueueConsumer):
    """nameko's QueueConsumer inherits kombu's default for a body it cannot decode (not JSON, or
    a content type it does not accept): log it and ack it, i.e. drop the message. Ours hands
    such a message to its ReliableEventHandler, which fails it like any other poison message."""

    def get_consumers(self, consumer_cls, channel):
        for provider in self._providers:
            on_decode_error = getattr(provider, "handle_undecodable_message", None) or self.on_decode_error
            consumer = consumer_cls(queues=[provider.queue], callbacks=[partial(self.handle_message, provider)],
                                    accept=self.accept, on_decode_error=on_decode_error)
            consumer.qos(prefetch_count=getattr(provider, "prefetch_count", None) or self.prefetch_count)
            self._consumers[provider] = consumer
        return self._consumers.values()

    def handle_message(self, provider, body, message):
        if isinstance(provider, BatchEventHandler):
            # It only queues the message, or hands a batch to a worker: no green thread per message.
            provider.handle_message(body, message)
        else:
            super().handle_message(provider, body, message)


class ReliableEventHandler(EventHandler):
    """@event_handler that never blocks its queue on a bad message: a failed message waits in a
    retry queue and comes back; after MEND_MAX_DELIVERY_ATTEMPTS it is moved to "<queue>.dlq"
    (published with a confirm before the original is acked, so it is never lost)."""

    queue_consumer = ReliableQueueConsumer()

    def setup(self):
        super().setup()
        config = self.container.config
        self.max_attempts = int(config.get("MEND_MAX_DELIVERY_ATTEMPTS", 5))
        retry_delay_ms = int(config.get("MEND_RETRY_DELAY_MS", 1000))
        name = self.queue.name
        self.queue = Queue(name, exchange=self.queue.exchange, routing_key=self.event_type, durable=True,
                           auto_delete=False, exclusive=False, queue_arguments={
                               "x-dead-letter-exchange": RETRY_EXCHANGE,
                               "x-dead-letter-routing-key": name,
                           })
        self.retry_queue, self.dead_letter_queue = declare_consumer_topology(
            config["AMQP_URI"], name, retry_delay_ms)
        self.consumer_name = f"{self.container.service_name}.{self.method_name}"

    def handle_result(self, message, worker_ctx, result=None, exc_info=None):
        self._observe_handling(worker_ctx)
        return super().handle_result(message, worker_ctx, result, exc_info)

    def _observe_handling(self, worker_ctx) -> None:
        started = worker_ctx.data.get("mend.started")
        if started is not None:
            EVENT_HANDLING.labels(self.consumer_name, self.event_type).observe(time.monotonic() - started)

    def handle_undecodable_message(self, message, exc):
        """A body that cannot be decoded never reaches a worker: fail it here, so it is retried
        and then dead-lettered like any other poison message instead of being dropped."""
        log.error("could not decode an event body (%s)", exc, extra={"event_type": self.event_type})
        self.handle_message_processed(message, exc_info=(type(exc), exc, exc.__traceback__))

    def handle_message_processed(self, message, result=None, exc_info=None):
        if exc_info is None:
            EVENTS_CONSUMED.labels(self.consumer_name, self.event_type, "ok").inc()
            self.queue_consumer.ack_message(message)
            return
        EVENTS_FAILED.labels(self.consumer_name, self.event_type).inc()
        attempts = previous_attempts(message.headers, self.queue.name) + 1
        if attempts < self.max_attempts:
            log.warning("event handling failed (attempt %d of %d); it will be retried", attempts, self.max_attempts,
                        extra={"event_type": self.event_type})
            if message.channel.connection:
                message.reject(requeue=False)   # dead-lettered to the retry queue, back after the delay
            return
        try:
            self._dead_letter(message, attempts, exc_info)
        except Exception:
            # Could not park it: leave it unacked-then-requeued rather than lose it.
            log.exception("could not move a failed event to the dead-letter queue; requeueing")
            self.queue_consumer.requeue_message(message)
            return
        DEAD_LETTERED.labels(self.consumer_name, self.event_type).inc()
        EVENTS_CONSUMED.labels(self.consumer_name, self.event_type, "dead_lettered").inc()
        log.error("event moved to %s after %d attempts", self.dead_letter_queue, attempts,
                  extra={"event_type": self.event_type})
        self.queue_consumer.ack_message(message)

    def _dead_letter(self, message, attempts, exc_info):
        headers = dict(message.headers or {})
        headers.pop("x-death", None)
        headers.update({
            "x-mend-attempts": attempts,
            "x-mend-original-queue": self.queue.name,
            "x-mend-error": "".join(traceback.format_exception_only(exc_info[0], exc_info[1])).strip()[:2000],
            "x-mend-dead-lettered-at": datetime.now(timezone.utc).isoformat(),
        })
        with kombu.Connection(self.container.config["AMQP_URI"], connect_timeout=5,
                              transport_options={"confirm_publish": True}) as conn:
            producer = conn.Producer()
            producer.publish(message.body, exchange=DEAD_LETTER_EXCHANGE, routing_key=self.queue.name,
                             headers=headers, content_type=message.content_type,
                             content_encoding=message.content_encoding, delivery_mode=2,
                             message_id=message.properties.get("message_id"), mandatory=True, retry=False,
                             timeout=10)


event_subscriber = ReliableEventHandler.decorator


class BatchEventHandler(ReliableEventHandler):
    """@event_batch_subscriber: the method receives a list of event bodies and handles them in
    one transaction. An event waits here at most MEND_EVENT_BATCH_LINGER_MS for others to join
    it (at most MEND_EVENT_BATCH_SIZE go together, and a full batch goes at once), and at most
    MEND_EVENT_BATCH_CONCURRENCY batches are handled at a time: the cost of a worker and a commit
    is shared by every event of the batch, for a few milliseconds of delay.

    If a batch fails, each of its events is handled again on its own: a poison event is retried
    and dead-lettered alone (ReliableEventHandler's rules) and never takes the others with it."""

    def setup(self):
        super().setup()
        config = self.container.config
        self.batch_size = int(config.get("MEND_EVENT_BATCH_SIZE", 100))
        self.max_in_flight = int(config.get("MEND_EVENT_BATCH_CONCURRENCY", 2))
        self.linger_seconds = int(config.get("MEND_EVENT_BATCH_LINGER_MS", 20)) / 1000
        # Enough unacknowledged deliveries to fill the batches in flight and the next one.
        self.prefetch_count = self.batch_size * (self.max_in_flight + 1)
        self._pending: list[tuple[object, object]] = []
        self._in_flight = 0
        self._linger = None       # the timer for the oldest waiting event
        self._due = False         # the oldest waiting event has waited long enough

    def stop(self):
        super().stop()
        self._stop_linger()
        # Not yet handed to a worker: back to the queue for another consumer, now.
        pending, self._pending = self._pending, []
        for _, message in pending:
            self.queue_consumer.requeue_message(message)

    def handle_message(self, body, message):
        self._pending.append((body, message))
        if len(self._pending) == 1:
            self._start_linger()
        self._dispatch()

    def _start_linger(self):
        self._due = self.linger_seconds <= 0
        if not self._due:
            self._linger = eventlet.spawn_after(self.linger_seconds, self._linger_over)

    def _stop_linger(self):
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None

    def _linger_over(self):
        self._linger = None
        self._due = True
        self._dispatch()

    def _dispatch(self):
        while self._pending and self._in_flight < self.max_in_flight and (
                self._due or len(self._pending) >= self.batch_size):
            batch = self._pending[:self.batch_size]
            del self._pending[:self.batch_size]
            self._stop_linger()
            if self._pending:
                self._start_linger()   # the rest arrived later: they get their own wait
            self._in_flight += 1
            messages = [m for _, m in batch]
            if not self._spawn([b for b, _ in batch], messages, partial(self.handle_batch_result, messages)):
                self._in_flight -= 1

    def _spawn(self, bodies, messages, handle_result) -> bool:
        """A worker for these events; if the container is being killed, they go back to the queue."""
        try:
            self.container.spawn_worker(self, (bodies,), {}, context_data=self.unpack_message_headers(messages[0]),
                                        handle_result=handle_result)
            return True
        except ContainerBeingKilled:
            for message in messages:
                self.queue_consumer.requeue_message(message)
            return False

    def handle_batch_result(self, messages, worker_ctx, result=None, exc_info=None):
        self._in_flight -= 1
        self._observe_handling(worker_ctx)
        EVENT_BATCH_SIZE.labels(self.consumer_name, self.event_type).observe(len(messages))
        if exc_info is None:
            EVENTS_CONSUMED.labels(self.consumer_name, self.event_type, "ok").inc(len(messages))
            for message in messages:
                self.queue_consumer.ack_message(message)
        elif len(messages) == 1:
            self.handle_message_processed(messages[0], exc_info=exc_info)
        else:
            log.warning("a batch of %d events failed (%s); handling each on its own", len(messages),
                        exc_info[1].__class__.__name__, extra={"event_type": self.event_type})
            self.container.spawn_managed_thread(partial(self._one_by_one, worker_ctx.args[0], messages),
                                                identifier=f"{self.consumer_name}.one_by_one")
        self._dispatch()
        return result, exc_info

    def _one_by_one(self, bodies, messages):
        for body, message in zip(bodies, messages):
            self._spawn([body], [message], partial(self.handle_result, message))


event_batch_subscriber = BatchEventHandler.decorator


_databases: dict[tuple[str, str], Database] = {}


def _process_database(config) -> Database:
    """One engine and pool per process, shared by every dependency that needs the database."""
    key = (config["MEND_DATABASE_URL"], config["MEND_DB_SCHEMA"])
    if key not in _databases:
        _databases[key] = Database(key[0], key[1], pool_size=int(config.get("MEND_DB_POOL_SIZE", 20)))
    return _databases[key]


class DatabaseProvider(DependencyProvider):
    """Gives each worker the service's Database."""

    def setup(self):
        self.database = _process_database(self.container.config)

    def stop(self):
        self.database.dispose()

    def get_dependency(self, worker_ctx):
        return self.database


class UnitOfWorkProvider(DependencyProvider):
    """Gives each worker the service's units of work (UnitsOfWork: a transaction, or chained
    writes), built once per process."""

    def __init__(self, uow_class, chained_uow_class, platform: PlatformTables, service: str):
        """chained_uow_class may be None for a service whose handlers need only transactions."""
        self.uow_class = uow_class
        self.chained_uow_class = chained_uow_class
        self.platform = platform
        self.service = service

    def setup(self):
        database = _process_database(self.container.config)
        store = PlatformStore(database, self.platform, self.service)
        chained = self.chained_uow_class
        self.units = UnitsOfWork(lambda: self.uow_class(database, store),
                                 (lambda: chained(database, store)) if chained else None)

    def get_dependency(self, worker_ctx):
        return self.units


class EventContext(DependencyProvider):
    """Carries the correlation id into logs for every worker, and measures consumer lag."""

    def worker_setup(self, worker_ctx):
        worker_ctx.data["mend.started"] = time.monotonic()
        cid = worker_ctx.data.get("correlation_id")
        # Only an event handler's arguments are envelopes (an RPC's are the caller's own).
        arg = worker_ctx.args[0] if worker_ctx.args and isinstance(worker_ctx.entrypoint, EventHandler) else None
        bodies = [b for b in (arg if isinstance(arg, list) else [arg]) if isinstance(b, dict)]
        consumer = f"{self.container.service_name}.{worker_ctx.entrypoint.method_name}"
        now = datetime.now(timezone.utc)
        for body in bodies:
            occurred = body.get("occurred_at")
            if occurred:
                try:
                    lag = (now - datetime.fromisoformat(occurred)).total_seconds()
                    CONSUMER_LAG.labels(consumer, str(body.get("type"))).observe(max(lag, 0.0))
                except (TypeError, ValueError):
                    pass
        if isinstance(arg, list) and len(bodies) != 1:
            # A batch of several has no single correlation id: a new one goes in its logs, and each
            # event's own id goes with what is written and published for it.
            cid = None
        elif bodies:
            cid = bodies[0].get("correlation_id") or cid
        cid = cid or new_correlation_id()
        correlation_id_var.set(cid)
        # nameko sends the worker's context data as headers with every RPC call and event it
        # makes: the next service logs the same id.
        worker_ctx.data["correlation_id"] = cid

    def get_dependency(self, worker_ctx):
        return correlation_id_var.get()


class TimedRpcProxy(RpcProxy):
    """nameko's RpcProxy with a timeout on every call (MEND_RPC_TIMEOUT seconds), and errors as
    mend_common.rpc's: RpcTimeout, ServiceUnavailable, or RpcError with the remote exception's
    type and message. The correlation id goes along in the worker's context headers, and this
    service's own token (MEND_SERVICE_TOKEN) in the call's headers only: never on events."""

    def setup(self):
        super().setup()
        self.timeout = float(self.container.config.get("MEND_RPC_TIMEOUT", 10))
        self.token = str(self.container.config.get("MEND_SERVICE_TOKEN") or "")

    def get_dependency(self, worker_ctx):
        proxy = _AuthorisedServiceProxy(worker_ctx, self.target_service, self.rpc_reply_listener, **self.options)
        proxy.token = self.token
        return _TimedServiceProxy(proxy, self.target_service, self.timeout)


class _AuthorisedServiceProxy(ServiceProxy):
    token = ""

    def __getattr__(self, name):
        method = _AuthorisedMethodProxy(self.worker_ctx, self.service_name, name, self.reply_listener, **self.options)
        method.token = self.token
        return method


class _AuthorisedMethodProxy(MethodProxy):
    token = ""

    def get_message_headers(self, worker_ctx):
        headers = super().get_message_headers(worker_ctx)
        if self.token:
            headers[self._get_header_name("authorization")] = f"Bearer {self.token}"
        return headers


class _TimedServiceProxy:
    def __init__(self, proxy, service: str, timeout: float):
        self._proxy, self._service, self._timeout = proxy, service, timeout

    def __getattr__(self, method: str):
        return lambda *args, **kwargs: self._invoke(method, self._timeout, args, kwargs)

    def call(self, service: str, method: str, *args, timeout: float | None = None, **kwargs):
        """mend_common.rpc.RpcClient's shape, so one adapter serves api and worker processes."""
        if service != self._service:
            raise ValueError(f"this proxy calls {self._service}, not {service}")
        return self._invoke(method, self._timeout if timeout is None else timeout, args, kwargs)

    def _invoke(self, method: str, seconds: float, args, kwargs):
        remote = getattr(self._proxy, method)
        target = f"{self._service}.{method}"
        timer = eventlet.Timeout(seconds)
        try:
            return remote(*args, **kwargs)
        except eventlet.Timeout as fired:
            if fired is not timer:
                raise
            raise RpcTimeout(target, seconds) from None
        except UnknownService:
            raise ServiceUnavailable(target) from None
        except RemoteError as exc:
            raise RpcError(str(exc.exc_type), str(exc.value)) from None
        finally:
            timer.cancel()


class RpcCaller(DependencyProvider):
    """Who is calling an @rpc method: the bearer token the caller sent (a service token from
    mend_common.rpc.RpcClient), verified with the region's public key. The token is taken out of
    the worker's context, so it never travels on with calls or events this worker makes."""

    def setup(self):
        from .auth import TokenVerifier
        path = self.container.config.get("MEND_TOKEN_PUBLIC_KEY_FILE")
        issuer = self.container.config.get("MEND_TOKEN_ISSUER", "mend-local")
        self.verifier = TokenVerifier.from_file(path, issuer) if path and os.path.exists(path) else None

    def get_dependency(self, worker_ctx):
        # nameko injects dependencies before worker_setup runs: take the token here.
        verifier, header = self.verifier, worker_ctx.data.pop("authorization", "")

        def principal():
            from .errors import Unauthenticated
            scheme, _, token = str(header or "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("no credentials: RPC callers send their service token")
            if verifier is None:
                raise Unauthenticated("this worker has no token public key: every RPC is refused")
            return verifier.verify(token.strip())
        return principal


class ConfigValue(DependencyProvider):
    def __init__(self, key: str):
        self.key = key

    def get_dependency(self, worker_ctx):
        return self.container.config[self.key]


def _json(status: int, body: dict) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


class WorkerBase:
    """Health, readiness and metrics on the worker's own HTTP port."""

    db = DatabaseProvider()
    correlation_id = EventContext()
    amqp_uri = ConfigValue("AMQP_URI")

    @http("GET", "/healthz")
    def healthz(self, request):
        return _json(200, {"status": "alive"})

    @http("GET", "/readyz")
    def readyz(self, request):
        checks = {"database": self.db.ping()}
        try:
            with kombu.Connection(self.amqp_uri, connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            checks["broker"] = True
        except Exception:
            checks["broker"] = False
        ready = all(checks.values())
        return _json(200 if ready else 503, {"ready": ready, "checks": checks})

    @http("GET", "/metrics")
    def metrics(self, request):
        body, content_type = exposition()
        return Response(body, status=200, content_type=content_type)


