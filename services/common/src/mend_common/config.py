"""Settings from environment variables, with safe defaults for a first run on a laptop."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

DEFAULT_PORTS = {
    # service: (grpc, http, worker http)
    "referrals": (50051, 8081, 9101),
    "cases": (50052, 8082, 9102),
    "risk": (50053, 8083, 9103),
    "scheduling": (50054, 8084, 9104),
    "notifications": (50055, 8085, 9105),
    "reporting": (50056, 8086, 9106),
}


class ConfigError(ValueError):
    pass


def var_dir(env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get("MEND_VAR_DIR", "var")).resolve()


@dataclass(frozen=True)
class Settings:
    service: str
    amqp_uri: str
    database_url: str
    grpc_port: int
    http_port: int
    worker_http_port: int
    bind_host: str
    token_public_key_file: Path
    token_private_key_file: Path
    token_issuer: str
    max_delivery_attempts: int
    retry_delay_ms: int
    relay_enabled: bool
    grpc_threads: int
    grpc_max_concurrent_rpcs: int
    worker_max_concurrency: int
    db_pool_size: int
    api_key_cache_seconds: float
    relay_linger_ms: int
    relay_batch_size: int
    relay_unrouted_grace_seconds: int
    relay_parked_retry_seconds: int
    event_batch_size: int
    event_batch_concurrency: int
    event_batch_linger_ms: int
    amqp_timeout_seconds: float
    log_level: str
    service_token: str      # this service's own token for nameko RPC to other services


    @property
    def schema(self) -> str:
        """The PostgreSQL schema this service owns (SQLite uses one file per service instead)."""
        return self.service


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def load_settings(service: str, env: Mapping[str, str] = os.environ) -> Settings:
    grpc_default, http_default, worker_default = DEFAULT_PORTS.get(service, (50050, 8080, 9100))
    vd = var_dir(env)
    database_url = (
        env.get(f"MEND_{service.upper()}_DATABASE_URL")
        or env.get("MEND_DATABASE_URL")
        or f"sqlite:///{vd / (service + '.db')}"
    )
    return Settings(
        service=service,
        amqp_uri=env.get("MEND_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/"),
        database_url=database_url,
        grpc_port=_int(env, "MEND_GRPC_PORT", grpc_default, 1, 65535),
        http_port=_int(env, "MEND_HTTP_PORT", http_default, 1, 65535),
        worker_http_port=_int(env, "MEND_WORKER_HTTP_PORT", worker_default, 1, 65535),
        bind_host=env.get("MEND_BIND_HOST", "127.0.0.1"),
        token_public_key_file=Path(env.get("MEND_TOKEN_PUBLIC_KEY_FILE", str(vd / "token-signing.pub.pem"))),
        token_private_key_file=Path(env.get("MEND_TOKEN_PRIVATE_KEY_FILE", str(vd / "token-signing.pem"))),
        token_issuer=env.get("MEND_TOKEN_ISSUER", "mend-local"),
        max_delivery_attempts=_int(env, "MEND_MAX_DELIVERY_ATTEMPTS", 5, 1, 100),
        retry_delay_ms=_int(env, "MEND_RETRY_DELAY_MS", 1000, 0, 3_600_000),
        relay_enabled=_bool(env, "MEND_RELAY_ENABLED", True),
        grpc_threads=_int(env, "MEND_GRPC_THREADS", 8, 1, 512),
        # Calls in progress (running or queued for a thread) per api process. Measured under
        # Poisson arrivals near capacity: at 256 a backlog made every call slower and throughput
        # fell (437-463/s answered of 480 offered, p99 0.7-0.9 s); at 64 all were answered, p99
        # 95-145 ms. Beyond it a call is refused at once with RESOURCE_EXHAUSTED.
        grpc_max_concurrent_rpcs=_int(env, "MEND_GRPC_MAX_CONCURRENT_RPCS", 64, 1, 100_000),
        worker_max_concurrency=_int(env, "MEND_WORKER_CONCURRENCY", 10, 1, 500),
        db_pool_size=_int(env, "MEND_DB_POOL_SIZE", 20, 1, 200),
        api_key_cache_seconds=float(_int(env, "MEND_API_KEY_CACHE_SECONDS", 10, 0, 3600)),
        # How long the relay lets a partial batch fill: fewer, larger publishes and transactions.
        relay_linger_ms=_int(env, "MEND_RELAY_LINGER_MS", 20, 0, 1000),
        relay_batch_size=_int(env, "MEND_RELAY_BATCH_SIZE", 500, 1, 10000),
        # An event no queue is bound for is retried with backoff for this long, then hourly.
        relay_unrouted_grace_seconds=_int(env, "MEND_RELAY_UNROUTED_GRACE_SECONDS", 900, 0, 86_400),
        relay_parked_retry_seconds=_int(env, "MEND_RELAY_PARKED_RETRY_SECONDS", 3600, 1, 86_400),
        # Event handlers take events in batches, one transaction each: up to this many, waiting
        # at most this long for a batch to fill, with this many batches handled at a time.
        event_batch_size=_int(env, "MEND_EVENT_BATCH_SIZE", 100, 1, 1000),
        event_batch_linger_ms=_int(env, "MEND_EVENT_BATCH_LINGER_MS", 20, 0, 1000),
        event_batch_concurrency=_int(env, "MEND_EVENT_BATCH_CONCURRENCY", 2, 1, 50),
        amqp_timeout_seconds=float(_int(env, "MEND_AMQP_TIMEOUT_SECONDS", 10, 1, 300)),
        log_level=env.get("MEND_LOG_LEVEL", "INFO").upper(),
        service_token=_service_token(env),
    )


def secret(env: Mapping[str, str], name: str) -> str:
    """The setting `name`, or the contents of the file `name`_FILE names (a mounted secret)."""
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE {path!r} cannot be read: {exc.strerror}") from None
    return env.get(name, "").strip()


def _service_token(env: Mapping[str, str]) -> str:
    return secret(env, "MEND_SERVICE_TOKEN")
