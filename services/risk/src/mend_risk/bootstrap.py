"""Composition root: wires the risk service for the shared launchers."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from mend_common.auth import Authenticator
from mend_common.config import ConfigError
from mend_common.outbox import PlatformStore
from mend_common.registry import ApiContext, ApiParts, ServiceDefinition
from mend_common.uow import UnitsOfWork

from .adapters.tables import metadata, platform
from .domain.assessment import MAX_VALID_DAYS
from .service_layer.unit_of_work import RiskUnitOfWork


@dataclass(frozen=True)
class RiskSettings:
    valid_days: int            # an assessment's life before a new one is due
    sweep_seconds: float       # how often a worker looks for assessments that have run out
    remote_timeout: float      # seconds for a question to the cases service


def risk_settings(env: Mapping[str, str]) -> RiskSettings:
    try:
        valid_days = int(env.get("MEND_RISK_ASSESSMENT_VALID_DAYS", "90"))
        sweep = float(env.get("MEND_RISK_SWEEP_SECONDS", "60"))
        remote = float(env.get("MEND_RISK_REMOTE_TIMEOUT_SECONDS", "5"))
    except ValueError:
        raise ConfigError("MEND_RISK_ASSESSMENT_VALID_DAYS is whole days; MEND_RISK_SWEEP_SECONDS and "
                          "MEND_RISK_REMOTE_TIMEOUT_SECONDS are seconds") from None
    if not 1 <= valid_days <= MAX_VALID_DAYS:
        raise ConfigError(f"MEND_RISK_ASSESSMENT_VALID_DAYS must be 1-{MAX_VALID_DAYS}")
    if not 0.1 <= sweep <= 3600 or not 0.1 <= remote <= 60:
        raise ConfigError("MEND_RISK_SWEEP_SECONDS must be 0.1-3600 and MEND_RISK_REMOTE_TIMEOUT_SECONDS 0.1-60")
    return RiskSettings(valid_days, sweep, remote)


def build_api(ctx: ApiContext) -> ApiParts:
    from .adapters.cases_client import RpcCaseFacts
    from .entrypoints import grpc_api
    settings = risk_settings(os.environ)
    store = PlatformStore(ctx.db, platform, "risk")
    uow_factory = UnitsOfWork(lambda: RiskUnitOfWork(ctx.db, store))
    cases = RpcCaseFacts(ctx.rpc, settings.remote_timeout)
    return ApiParts(authenticator=Authenticator(ctx.token_verifier),
                    grpc_registrars=grpc_api.registrars(uow_factory, cases, settings),
                    grpc_service_names=grpc_api.SERVICE_NAMES)


SERVICE = ServiceDefinition(
    name="risk", metadata=metadata, platform=platform,
    migrations_dir=Path(__file__).resolve().parent / "migrations",
    build_api=build_api, worker_class_path="mend_risk.entrypoints.worker:RiskWorker",
)
