"""Composition root: wires the scheduling service for the shared launchers."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from mend_common.auth import Authenticator
from mend_common.config import ConfigError, secret
from mend_common.outbox import PlatformStore
from mend_common.registry import ApiContext, ApiParts, ServiceDefinition
from mend_common.uow import UnitsOfWork

from .adapters.tables import metadata, platform
from .service_layer.services import Settings
from .service_layer.unit_of_work import SchedulingUnitOfWork


def remote_timeout(env: Mapping[str, str]) -> float:
    try:
        value = float(env.get("MEND_SCHEDULING_REMOTE_TIMEOUT_SECONDS", "5"))
    except ValueError:
        raise ConfigError("MEND_SCHEDULING_REMOTE_TIMEOUT_SECONDS is seconds") from None
    if not 0.1 <= value <= 60:
        raise ConfigError("MEND_SCHEDULING_REMOTE_TIMEOUT_SECONDS must be 0.1-60")
    return value


def scheduling_settings(env: Mapping[str, str]) -> Settings:
    try:
        workers = int(env.get("MEND_SCHEDULING_SOLVER_WORKERS", "2"))
    except ValueError:
        raise ConfigError("MEND_SCHEDULING_SOLVER_WORKERS is a whole number of solver threads") from None
    if not 1 <= workers <= 16:
        raise ConfigError("MEND_SCHEDULING_SOLVER_WORKERS must be 1-16")
    calendar_secret = secret(env, "MEND_SCHEDULING_CALENDAR_SECRET")
    if calendar_secret and len(calendar_secret) < 32:
        raise ConfigError("MEND_SCHEDULING_CALENDAR_SECRET must be at least 32 characters")
    return Settings(organizer_email=env.get("MEND_SCHEDULING_ORGANIZER_EMAIL", "scheduling@mend.invalid"),
                    calendar_secret=calendar_secret.encode(), solver_workers=workers)


def build_api(ctx: ApiContext) -> ApiParts:
    from .adapters.other_services import RpcCaseDirectory, RpcSafetyGate
    from .entrypoints import grpc_api, http_api
    settings = scheduling_settings(os.environ)
    timeout = remote_timeout(os.environ)
    store = PlatformStore(ctx.db, platform, "scheduling")
    uow_factory = UnitsOfWork(lambda: SchedulingUnitOfWork(ctx.db, store))
    cases = RpcCaseDirectory(ctx.rpc, timeout)
    gate = RpcSafetyGate(ctx.rpc, timeout)
    return ApiParts(authenticator=Authenticator(ctx.token_verifier),
                    grpc_registrars=grpc_api.registrars(uow_factory, cases, gate, settings),
                    grpc_service_names=grpc_api.SERVICE_NAMES,
                    http_routes=http_api.routes(uow_factory, settings))


SERVICE = ServiceDefinition(
    name="scheduling", metadata=metadata, platform=platform,
    migrations_dir=Path(__file__).resolve().parent / "migrations",
    build_api=build_api, worker_class_path="mend_scheduling.entrypoints.worker:SchedulingWorker",
)
