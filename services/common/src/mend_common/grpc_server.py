"""gRPC server bootstrap: grpc.health.v1, and one interceptor that authenticates, carries the
correlation id, maps errors to status codes (never a traceback), and records metrics.

Runs in a plain (non-eventlet) process: grpcio hangs under eventlet."""
from __future__ import annotations

import contextvars
import logging
import time
from concurrent import futures
from typing import Callable, Iterable

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from .auth import Authenticator, Principal
from .errors import ConditionsNotMet, MendError, ValidationFailed
from .logs import correlation_id_var, new_correlation_id
from .metrics import GRPC_LATENCY, GRPC_REQUESTS

log = logging.getLogger(__name__)

principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)

MAX_MESSAGE_BYTES = 256 * 1024
UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


def current_principal() -> Principal:
    principal = principal_var.get()
    if principal is None:  # the interceptor always sets it; this guards a miswired servicer
        raise RuntimeError("no authenticated principal for this call")
    return principal


# gRPC clients refuse response metadata over 8 KiB by default, and a refused status reaches the
# caller as RESOURCE_EXHAUSTED with no field errors at all. The status message and the
# BadRequest (sent base64-encoded) must fit well inside that, however many fields are wrong.
STATUS_MESSAGE_LIMIT = 512
FIELD_VIOLATIONS_BYTES_LIMIT = 4096


def _status_for(error: MendError) -> status_pb2.Status:
    code = getattr(code_pb2, error.grpc_code)
    if isinstance(error, ConditionsNotMet):
        failure = error_details_pb2.PreconditionFailure()
        for condition, description in error.missing[:20]:
            failure.violations.add(type=condition, subject="case", description=description[:300])
        status = status_pb2.Status(code=code, message=error.message[:STATUS_MESSAGE_LIMIT])
        detail = any_pb2.Any()
        detail.Pack(failure)
        status.details.append(detail)
        return status
    if not isinstance(error, ValidationFailed):
        return status_pb2.Status(code=code, message=error.message)
    message = str(error)
    if len(message) > STATUS_MESSAGE_LIMIT:
        message = message[:STATUS_MESSAGE_LIMIT - 40].rsplit(";", 1)[0] + f"; ... ({len(error.violations)} in all)"
    bad_request = error_details_pb2.BadRequest()
    for i, v in enumerate(error.violations):
        bad_request.field_violations.add(field=v.field, description=v.rule)
        if bad_request.ByteSize() > FIELD_VIOLATIONS_BYTES_LIMIT:
            del bad_request.field_violations[-1]
            more = len(error.violations) - i
            bad_request.field_violations.add(
                field="request", description=f"has {more} more invalid field(s) not listed here: correct these and send again")
            break
    status = status_pb2.Status(code=code, message=message)
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    status.details.append(detail)
    return status


class MendInterceptor(grpc.ServerInterceptor):
    def __init__(self, service: str, authenticator: Authenticator):
        self.service = service
        self.authenticator = authenticator

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        inner = handler.unary_unary
        needs_auth = not method.startswith(UNAUTHENTICATED_PREFIXES)
        short_method = method.rsplit("/", 1)[-1]
        latency = GRPC_LATENCY.labels(self.service, short_method)

        def behaviour(request, context: grpc.ServicerContext):
            started = time.perf_counter()
            metadata = {k.lower(): v for k, v in context.invocation_metadata() if isinstance(v, str)}
            cid = metadata.get("x-correlation-id", "")[:64] or new_correlation_id()
            correlation_id_var.set(cid)
            context.set_trailing_metadata((("x-correlation-id", cid),))
            code = "OK"
            try:
                if needs_auth:
                    principal_var.set(self.authenticator.authenticate(metadata))
                return inner(request, context)
            except MendError as error:
                code = error.grpc_code
                context.abort_with_status(rpc_status.to_status(_status_for(error)))
            except Exception as exc:
                if isinstance(exc, grpc.RpcError) or type(exc).__name__ == "_AbortError" or context.code() not in (None, grpc.StatusCode.OK):
                    code = context.code().name if context.code() else "UNKNOWN"
                    raise
                code = "INTERNAL"
                log.exception("unhandled error in %s", method)
                context.abort(grpc.StatusCode.INTERNAL, f"internal error; quote correlation id {cid}")
            finally:
                GRPC_REQUESTS.labels(self.service, short_method, code).inc()
                latency.observe(time.perf_counter() - started)

        return grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


def build_server(service: str, authenticator: Authenticator, registrars: Iterable[Callable[[grpc.Server], None]],
                 *, host: str, port: int, threads: int,
                 max_concurrent_rpcs: int | None = None) -> tuple[grpc.Server, health.HealthServicer, int]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"grpc-{service}"),
        interceptors=[MendInterceptor(service, authenticator)],
        # Beyond this many calls in progress a call gets RESOURCE_EXHAUSTED at once: an overload
        # is shed (clients retry with backoff) instead of queueing until every call times out.
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            # grpcio sets SO_REUSEPORT by default: a second server on the port would silently
            # take half the traffic. Refuse to share the port instead.
            ("grpc.so_reuseport", 0),
        ],
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for register in registrars:
        register(server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise RuntimeError(f"could not bind gRPC port {host}:{port} (is something else listening?)")
    return server, health_servicer, bound


def set_serving(health_servicer: health.HealthServicer, service_names: Iterable[str], serving: bool) -> None:
    state = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    health_servicer.set("", state)
    for name in service_names:
        health_servicer.set(name, state)
