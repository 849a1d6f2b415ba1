"""Run a whole Mend region on this machine: migrate, start every process kind as a real
subprocess, and stop it again. Used by `make run`, the integration tests and the benchmarks."""
from __future__ import annotations

import os

from dataclasses import dataclass, field
from pathlib import Path

from mend_common.auth import TokenIssuer, generate_signing_key
from mend_common.config import DEFAULT_PORTS
from mend_common.migrations import upgrade
from mend_common.registry import load_definition
from mend_common.testing.processes import ManagedProcess, ProcessGroup, console_script, free_port, port_in_use

SERVICES = ("referrals", "cases", "risk", "notifications", "scheduling")


@dataclass
class ServicePorts:
    grpc: int
    http: int
    worker_http: list[int]


@dataclass
class MendStack:
    var_dir: Path
    amqp_uri: str
    database_url: str | None = None          # None: a SQLite file per service under var_dir
    fixed_ports: bool = False                # True: the documented ports (make run); else free ones
    workers: dict[str, int] = field(default_factory=dict)   # worker processes per service (default 1)
    relay_in_api: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)   # per-service overrides
    ports: dict[str, ServicePorts] = field(default_factory=dict)
    group: ProcessGroup = field(default_factory=ProcessGroup)

    def __post_init__(self):
        self.var_dir = Path(self.var_dir).resolve()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.private_key = self.var_dir / "token-signing.pem"
        self.public_key = self.var_dir / "token-signing.pub.pem"
        generate_signing_key(self.private_key, self.public_key)
        self.issuer = TokenIssuer.from_file(self.private_key)
        for name in SERVICES:
            if self.fixed_ports:
                grpc_port, http_port, worker_port = DEFAULT_PORTS[name]
                n = self.workers.get(name, 1)
                self.ports[name] = ServicePorts(grpc_port, http_port, [worker_port + 100 * i for i in range(n)])
            else:
                self.ports[name] = ServicePorts(free_port(), free_port(),
                                                [free_port() for _ in range(self.workers.get(name, 1))])

    # -- configuration ----------------------------------------------------------------
    def database_for(self, service: str) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / (service + '.db')}"

    def env_for(self, service: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEND_")}
        env.update({
            "MEND_AMQP_URI": self.amqp_uri,
            "MEND_VAR_DIR": str(self.var_dir),
            f"MEND_{service.upper()}_DATABASE_URL": self.database_for(service),
            "MEND_TOKEN_PUBLIC_KEY_FILE": str(self.public_key),
            # What this service shows when it asks another over nameko RPC (a secret in production).
            "MEND_SERVICE_TOKEN": self.issuer.issue_service(service),
            "MEND_RELAY_ENABLED": "true" if self.relay_in_api else "false",
            # A local region's referrer webhooks and mail catcher live on this machine.
            "MEND_NOTIFY_WEBHOOK_PUBLIC_ONLY": "false",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        env.update(self.service_env.get(service, {}))
        return env

    def migrate(self) -> None:
        for name in SERVICES:
            upgrade(load_definition(name), self.database_for(name))

    # -- processes --------------------------------------------------------------------
    def _add(self, service: str, kind: str, index: int = 0) -> ManagedProcess:
        ports = self.ports[service]
        env = self.env_for(service)
        if kind == "api":
            env.update({"MEND_GRPC_PORT": str(ports.grpc), "MEND_HTTP_PORT": str(ports.http)})
            ready = f"http://127.0.0.1:{ports.http}/readyz"
            wanted = (ports.grpc, ports.http)
        elif kind == "worker":
            env["MEND_WORKER_HTTP_PORT"] = str(ports.worker_http[index])
            ready = f"http://127.0.0.1:{ports.worker_http[index]}/readyz"
            wanted = (ports.worker_http[index],)
        else:  # relay
            ready, wanted = None, ()
        busy = [p for p in wanted if port_in_use(p)]
        if busy:
            raise RuntimeError(f"port(s) {busy} already in use: is another Mend running?")
        name = f"{service}-{kind}" + (f"-{index}" if index else "")
        return self.group.add(ManagedProcess(name, [console_script(f"mend-{kind}"), service], env, ready,
                                             self.var_dir / "logs" / f"{name}.log"))

    def start(self, timeout: float = 90.0) -> "MendStack":
        self.migrate()
        for name in SERVICES:
            for i in range(self.workers.get(name, 1)):
                self._add(name, "worker", i)
            self._add(name, "api")
            if not self.relay_in_api:
                self._add(name, "relay")
        try:
            self.group.start_all(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def process(self, name: str) -> ManagedProcess:
        return next(p for p in self.group.processes if p.name == name)

    def restart(self, name: str, timeout: float = 60.0) -> None:
        proc = self.process(name)
        proc.stop()
        proc.proc = None
        proc.start().wait_ready(timeout)

    def stop(self) -> None:
        self.group.stop_all()

    # -- endpoints and credentials ----------------------------------------------------
    def grpc_target(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service].grpc}"

    def http_base(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service].http}"

    def token(self, roles, counties, subject: str = "staff-1", name: str = "") -> str:
        return self.issuer.issue(subject, roles, counties, name=name)


