"""Composition root: wires the cases service for the shared launchers."""
from __future__ import annotations

from pathlib import Path

from mend_common.auth import Authenticator
from mend_common.outbox import PlatformStore
from mend_common.registry import ApiContext, ApiParts, ServiceDefinition

from .adapters.tables import metadata, platform
from mend_common.uow import UnitsOfWork

from .service_layer.unit_of_work import CasesUnitOfWork


def build_api(ctx: ApiContext) -> ApiParts:
    from .entrypoints import grpc_api
    store = PlatformStore(ctx.db, platform, "cases")

    uow_factory = UnitsOfWork(lambda: CasesUnitOfWork(ctx.db, store))

    return ApiParts(authenticator=Authenticator(ctx.token_verifier), grpc_registrars=grpc_api.registrars(uow_factory),
                    grpc_service_names=grpc_api.SERVICE_NAMES)


SERVICE = ServiceDefinition(
    name="cases", metadata=metadata, platform=platform,
    migrations_dir=Path(__file__).resolve().parent / "migrations",
    build_api=build_api, worker_class_path="mend_cases.entrypoints.worker:CasesWorker",
)
