"""How the shared launchers find a service: each service package registers a ServiceDefinition
under the "mend.services" entry point group. The shared library never imports a service."""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable

import grpc
from sqlalchemy import MetaData

from .rpc import RpcClient
from .auth import Authenticator, TokenVerifier
from .config import Settings
from .db import Database
from .http import Route
from .tables import PlatformTables


@dataclass
class ApiContext:
    settings: Settings
    db: Database
    token_verifier: TokenVerifier | None
    _rpc: RpcClient | None = field(default=None, init=False, repr=False)

    @property
    def rpc(self) -> RpcClient:
        """nameko RPC to other services' workers, with MEND_AMQP_TIMEOUT_SECONDS per call."""
        if self._rpc is None:
            self._rpc = RpcClient(self.settings.amqp_uri, timeout=self.settings.amqp_timeout_seconds,
                                  token=self.settings.service_token)
        return self._rpc


@dataclass
class ApiParts:
    authenticator: Authenticator
    grpc_registrars: list[Callable[[grpc.Server], None]]
    grpc_service_names: list[str]
    http_routes: list[Route] = field(default_factory=list)


@dataclass
class ServiceDefinition:
    name: str
    metadata: MetaData
    platform: PlatformTables
    migrations_dir: Path
    build_api: Callable[[ApiContext], ApiParts]
    worker_class_path: str          # "package.module:Class", imported only in worker processes

    def worker_class(self):
        module, _, attr = self.worker_class_path.partition(":")
        return getattr(import_module(module), attr)


def load_definition(name: str) -> ServiceDefinition:
    found = [ep for ep in entry_points(group="mend.services") if ep.name == name]
    if not found:
        known = sorted(ep.name for ep in entry_points(group="mend.services"))
        raise SystemExit(f"unknown service {name!r}; installed services: {', '.join(known) or 'none'}")
    return found[0].load()
