"""Composition root: wires the referrals service for the shared launchers."""
from __future__ import annotations

from pathlib import Path

from mend_common.auth import Authenticator, CachedKeyLookup
from mend_common.outbox import PlatformStore
from mend_common.registry import ApiContext, ApiParts, ServiceDefinition

from .adapters.tables import metadata, platform
from .service_layer import services
from mend_common.uow import UnitsOfWork

from .service_layer.unit_of_work import ReferralsChainedUnitOfWork, ReferralsUnitOfWork


def build_api(ctx: ApiContext) -> ApiParts:
    from .entrypoints import grpc_api, http_api
    store = PlatformStore(ctx.db, platform, "referrals")

    uow_factory = UnitsOfWork(lambda: ReferralsUnitOfWork(ctx.db, store), lambda: ReferralsChainedUnitOfWork(ctx.db, store))

    key_lookup = CachedKeyLookup(lambda key_id, secret: services.authenticate_agency_key(uow_factory, key_id, secret),
                                 ttl=ctx.settings.api_key_cache_seconds)
    authenticator = Authenticator(ctx.token_verifier, key_lookup)
    return ApiParts(authenticator=authenticator, grpc_registrars=grpc_api.registrars(uow_factory),
                    grpc_service_names=grpc_api.SERVICE_NAMES, http_routes=http_api.routes(uow_factory))


SERVICE = ServiceDefinition(
    name="referrals", metadata=metadata, platform=platform,
    migrations_dir=Path(__file__).resolve().parent / "migrations",
    build_api=build_api, worker_class_path="mend_referrals.entrypoints.worker:ReferralsWorker",
)
