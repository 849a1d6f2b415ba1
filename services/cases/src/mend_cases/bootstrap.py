"""Composition root: wires the cases service for the shared launchers."""
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
from .domain.working_days import parse_extra_holidays
from .service_layer.services import Settings as RuleSettings
from .service_layer.unit_of_work import CasesUnitOfWork


@dataclass(frozen=True)
class CaseSettings:
    rules: RuleSettings
    sweep_seconds: float
    remote_timeout: float      # seconds for a question to the risk or scheduling service


def case_settings(env: Mapping[str, str]) -> CaseSettings:
    try:
        extra = parse_extra_holidays(env.get("MEND_EXTRA_BANK_HOLIDAYS", ""))
    except ValueError as exc:
        raise ConfigError(f"MEND_EXTRA_BANK_HOLIDAYS: {exc}") from None
    try:
        sweep = float(env.get("MEND_CASES_SWEEP_SECONDS", "60"))
        remote = float(env.get("MEND_CASES_REMOTE_TIMEOUT_SECONDS", "5"))
    except ValueError:
        raise ConfigError("MEND_CASES_SWEEP_SECONDS and MEND_CASES_REMOTE_TIMEOUT_SECONDS are seconds") from None
    if not 0.1 <= sweep <= 3600 or not 0.1 <= remote <= 60:
        raise ConfigError("MEND_CASES_SWEEP_SECONDS must be 0.1-3600 and MEND_CASES_REMOTE_TIMEOUT_SECONDS 0.1-60")
    return CaseSettings(RuleSettings(extra_bank_holidays=extra), sweep, remote)


def build_api(ctx: ApiContext) -> ApiParts:
    from .adapters.other_services import RpcFacilitatorRegister, RpcRiskService
    from .entrypoints import grpc_api
    settings = case_settings(os.environ)
    store = PlatformStore(ctx.db, platform, "cases")
    uow_factory = UnitsOfWork(lambda: CasesUnitOfWork(ctx.db, store))
    risk = RpcRiskService(ctx.rpc, settings.remote_timeout)
    register = RpcFacilitatorRegister(ctx.rpc, settings.remote_timeout)
    return ApiParts(authenticator=Authenticator(ctx.token_verifier),
                    grpc_registrars=grpc_api.registrars(uow_factory, risk, register, settings.rules),
                    grpc_service_names=grpc_api.SERVICE_NAMES)


SERVICE = ServiceDefinition(
    name="cases", metadata=metadata, platform=platform,
    migrations_dir=Path(__file__).resolve().parent / "migrations",
    build_api=build_api, worker_class_path="mend_cases.entrypoints.worker:CasesWorker",
)
