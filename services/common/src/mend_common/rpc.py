"""nameko RPC for processes that are not nameko workers (the api processes, the CLI, tests).

Speaks nameko 2.14's RPC protocol on its "nameko-rpc" exchange, so any nameko `@rpc` method
answers it. Every call has a timeout. The caller's correlation id travels in nameko's context
headers: the worker's logs, and the events and calls it makes in turn, carry the same id.
Thread-safe: each thread has its own connection and reply queue (grpcio serves calls on a thread
pool). Workers call each other with nameko_ext.TimedRpcProxy instead.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import amqp
import kombu

from .logs import correlation_id_var, new_correlation_id

RPC_EXCHANGE = "nameko-rpc"


class RpcError(Exception):
    """The remote method raised, or the call could not be made."""

    def __init__(self, exc_type: str, message: str):
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.message = message


class RpcTimeout(RpcError):
    def __init__(self, target: str, seconds: float):
        super().__init__("RpcTimeout", f"{target} did not answer within {seconds:g}s")


class ServiceUnavailable(RpcError):
    """No worker of that service is consuming (the request was unroutable), or the broker could
    not be reached. Callers that guard safety treat this like any other failure: deny."""

    NO_WORKER = "no worker of this service is running"

    def __init__(self, target: str, why: str = NO_WORKER):
        super().__init__("ServiceUnavailable", f"{target}: {why}")


class _ThreadChannel:
    """One thread's connection, confirmed publishing channel and exclusive reply queue."""

    def __init__(self, uri: str, connect_timeout: float):
        self.kombu = kombu.Connection(uri, connect_timeout=connect_timeout, heartbeat=0)
        self.kombu.ensure_connection(max_retries=1, timeout=connect_timeout)
        self.conn: amqp.Connection = self.kombu.connection
        self.channel = self.conn.channel()
        self.returned: set[str] = set()
        self.waiting: set[str] = set()     # replies to anything else (a call that timed out) are dropped
        self.replies: dict[str, dict] = {}
        self.channel.events["basic_return"].add(self._on_return)
        self.channel.exchange_declare(RPC_EXCHANGE, "topic", durable=True, auto_delete=False)
        self.reply_queue = f"rpc.reply-mend-{uuid.uuid4()}"
        self.channel.queue_declare(self.reply_queue, exclusive=True, auto_delete=True)
        self.channel.queue_bind(self.reply_queue, RPC_EXCHANGE, routing_key=self.reply_queue)
        self.channel.basic_consume(self.reply_queue, callback=self._on_reply, no_ack=True)

    def _on_return(self, exc, exchange, routing_key, message):
        self.returned.add(message.properties.get("correlation_id", ""))

    def _on_reply(self, message):
        call_id = message.properties.get("correlation_id")
        if call_id not in self.waiting:
            return
        try:
            self.replies[call_id] = json.loads(message.body)
        except (TypeError, ValueError):
            self.replies[call_id] = {"result": None, "error": {"exc_type": "MalformedReply",
                                                                "value": "the reply was not JSON"}}

    def close(self) -> None:
        try:
            self.kombu.release()
        except Exception:  # closing a broken connection may itself fail
            pass


class RpcClient:
    def __init__(self, amqp_uri: str, *, timeout: float = 10.0, connect_timeout: float = 5.0, token: str = ""):
        self.amqp_uri = amqp_uri
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.token = token
        self._local = threading.local()

    def _channel(self) -> _ThreadChannel:
        channel = getattr(self._local, "channel", None)
        if channel is None:
            try:
                channel = _ThreadChannel(self.amqp_uri, self.connect_timeout)
            except Exception as exc:
                raise ServiceUnavailable("broker", f"cannot connect: {exc}") from exc
            self._local.channel = channel
        return channel

    def _drop_channel(self) -> None:
        channel = getattr(self._local, "channel", None)
        if channel is not None:
            channel.close()
            self._local.channel = None

    def call(self, service: str, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call service.method(*args, **kwargs) and return its result. Raises RpcTimeout,
        ServiceUnavailable, or RpcError carrying the remote exception's type and message."""
        target = f"{service}.{method}"
        seconds = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + seconds
        call_id = str(uuid.uuid4())
        ch = self._channel()
        body = json.dumps({"args": list(args), "kwargs": kwargs}).encode()
        headers = {"nameko.correlation_id": correlation_id_var.get() or new_correlation_id(),
                   "nameko.call_id_stack": [f"mend-client.{call_id}"]}
        if self.token:
            headers["nameko.authorization"] = f"Bearer {self.token}"   # the called service checks who asks
        ch.waiting.add(call_id)
        try:
            # Waits for the broker's confirm; an unroutable request comes back (basic.return) first.
            ch.channel.basic_publish_confirm(
                amqp.Message(body, content_type="application/json", content_encoding="utf-8",
                             reply_to=ch.reply_queue, correlation_id=call_id, application_headers=headers,
                             expiration=str(int(seconds * 1000))),   # a request nobody took in time is dropped
                exchange=RPC_EXCHANGE, routing_key=target, mandatory=True, timeout=seconds)
            if call_id in ch.returned:
                raise ServiceUnavailable(target)
            while call_id not in ch.replies:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RpcTimeout(target, seconds)
                try:
                    ch.conn.drain_events(timeout=min(remaining, 1.0))
                except TimeoutError:
                    continue
        except RpcError:
            raise
        except Exception as exc:   # the connection broke: the next call reconnects
            self._drop_channel()
            raise ServiceUnavailable(target, f"broker connection failed: {exc!r}") from exc
        finally:
            ch.waiting.discard(call_id)
            ch.returned.discard(call_id)
        reply = ch.replies.pop(call_id)
        error = reply.get("error")
        if error:
            raise RpcError(str(error.get("exc_type", "Error")), str(error.get("value", "")))
        return reply.get("result")

    def close(self) -> None:
        self._drop_channel()
