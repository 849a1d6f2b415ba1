"""A small WSGI layer for the api process's HTTP side: JSON in and out, authentication,
error mapping (422 with field errors, never a traceback), health, readiness and metrics."""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Callable

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from .auth import Authenticator, Principal
from .errors import MendError, ValidationFailed
from .logs import correlation_id_var, new_correlation_id
from .metrics import HTTP_LATENCY, HTTP_REQUESTS, exposition

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024


@dataclass
class Route:
    method: str
    pattern: str
    handler: Callable  # (request, principal, **path_params) -> (status, body[, headers])
    public: bool = False

    def __post_init__(self):
        self.regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.pattern) + "$")


def json_response(status: int, body, headers: dict | None = None) -> Response:
    return Response(json.dumps(body, default=str), status=status, headers=headers or {},
                    mimetype="application/json")


def error_body(error: MendError) -> dict:
    body = {"error": error.grpc_code.lower(), "message": error.message if not isinstance(error, ValidationFailed) else "the request is invalid"}
    if isinstance(error, ValidationFailed):
        body["errors"] = [v.as_dict() for v in error.violations]
    return body


def read_json(request: Request) -> dict:
    """The request body as a JSON object, or a 400/413/415 naming the problem."""
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        raise _HttpError(413, "payload_too_large", f"the body must be at most {MAX_BODY_BYTES} bytes")
    mimetype = request.mimetype or ""
    if mimetype != "application/json":
        raise _HttpError(415, "unsupported_media_type", "send Content-Type: application/json")
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise _HttpError(413, "payload_too_large", f"the body must be at most {MAX_BODY_BYTES} bytes") from None
    if len(raw) > MAX_BODY_BYTES:
        raise _HttpError(413, "payload_too_large", f"the body must be at most {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw)
        if _U_ESCAPE.search(raw):
            # JSON lets "\\ud800" stand alone; no UTF-8 database, queue or gRPC peer takes it (I-JSON forbids it).
            json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise _HttpError(400, "malformed_json",
                         "the body is not valid Unicode text: it has an unpaired surrogate (\\ud800-\\udfff)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _HttpError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        # e.g. 100,000 nested "[": fits in the size limit but exhausts the decoder's stack.
        raise _HttpError(400, "malformed_json", "the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise _HttpError(400, "malformed_json", "the body must be a JSON object")
    return data


# A "\u" escape, in UTF-8, -16 or -32: the only way a lone surrogate gets past the decoder.
_U_ESCAPE = re.compile(rb"\\\x00*u")


class _HttpError(Exception):
    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


class JsonApp:
    def __init__(self, service: str, authenticator: Authenticator, routes: list[Route],
                 readiness: Callable[[], dict[str, bool]]):
        self.service = service
        self.authenticator = authenticator
        self.readiness = readiness
        self.routes = routes + [
            Route("GET", "/healthz", lambda request, principal: (200, {"status": "alive"}), public=True),
            Route("GET", "/readyz", self._ready, public=True),
            Route("GET", "/metrics", self._metrics, public=True),
        ]

    def _ready(self, request, principal):
        checks = self.readiness()
        ready = all(checks.values())
        return (200 if ready else 503), {"ready": ready, "checks": checks}

    def _metrics(self, request, principal):
        body, content_type = exposition()
        return Response(body, status=200, content_type=content_type)

    def __call__(self, environ, start_response):
        request = Request(environ)
        request.max_content_length = MAX_BODY_BYTES
        started = time.perf_counter()
        cid = request.headers.get("X-Correlation-Id", "")[:64] or new_correlation_id()
        correlation_id_var.set(cid)
        route_label = "unmatched"
        try:
            response = self._dispatch(request, cid)
            route_label = getattr(request, "mend_route", route_label)
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            response = json_response(500, {"error": "internal", "message": f"internal error; quote correlation id {cid}"})
        response.headers["X-Correlation-Id"] = cid
        route_label = getattr(request, "mend_route", route_label)
        HTTP_REQUESTS.labels(self.service, route_label, str(response.status_code)).inc()
        HTTP_LATENCY.labels(self.service, route_label).observe(time.perf_counter() - started)
        return response(environ, start_response)

    def _dispatch(self, request: Request, cid: str) -> Response:
        allowed = []
        for route in self.routes:
            match = route.regex.match(request.path)
            if not match:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            request.mend_route = route.pattern
            try:
                principal: Principal | None = None
                if not route.public:
                    principal = self.authenticator.authenticate(
                        {k.lower(): v for k, v in request.headers.items()})
                result = route.handler(request, principal, **match.groupdict())
            except _HttpError as err:
                return json_response(err.status, {"error": err.error, "message": err.message})
            except MendError as err:
                return json_response(err.http_status, error_body(err))
            if isinstance(result, Response):
                return result
            status, body, *rest = result
            return json_response(status, body, rest[0] if rest else None)
        if allowed:
            return json_response(405, {"error": "method_not_allowed", "message": f"use {', '.join(allowed)}"},
                                 {"Allow": ", ".join(allowed)})
        return json_response(404, {"error": "not_found", "message": f"no such endpoint: {request.path}"})
