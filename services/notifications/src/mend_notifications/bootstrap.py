"""Composition root: wires the notifications service for the shared launchers."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from mend_common.auth import Authenticator
from mend_common.config import ConfigError, secret
from mend_common.outbox import PlatformStore
from mend_common.registry import ApiContext, ApiParts, ServiceDefinition
from mend_common.uow import UnitsOfWork

from .adapters.tables import metadata, platform
from .service_layer.services import Settings as RuleSettings
from .service_layer.unit_of_work import NotificationsUnitOfWork


@dataclass(frozen=True)
class NotifySettings:
    rules: RuleSettings
    dispatch_seconds: float
    reminder_sweep_seconds: float
    remote_timeout: float
    smtp_host: str
    smtp_port: int
    smtp_from: str
    smtp_starttls: bool
    smtp_username: str
    smtp_password: str
    provider_url: str
    provider_api_key: str
    channel_timeout: float
    webhook_public_only: bool


def notify_settings(env: Mapping[str, str]) -> NotifySettings:
    try:
        hours = tuple(sorted({int(h) for h in env.get("MEND_NOTIFY_REMINDER_HOURS", "48,24").split(",") if h.strip()},
                             reverse=True))
        dispatch = float(env.get("MEND_NOTIFY_DISPATCH_SECONDS", "1"))
        sweep = float(env.get("MEND_NOTIFY_REMINDER_SWEEP_SECONDS", "60"))
        remote = float(env.get("MEND_NOTIFY_REMOTE_TIMEOUT_SECONDS", "5"))
        channel_timeout = float(env.get("MEND_NOTIFY_CHANNEL_TIMEOUT_SECONDS", "10"))
        port = int(env.get("MEND_SMTP_PORT", "25"))
        batch = int(env.get("MEND_NOTIFY_DISPATCH_BATCH", "50"))
        lease = float(env.get("MEND_NOTIFY_LEASE_SECONDS", "60"))
    except ValueError:
        raise ConfigError("MEND_NOTIFY_REMINDER_HOURS is whole hours separated by commas; the MEND_NOTIFY_*_SECONDS "
                          "settings are seconds; MEND_SMTP_PORT and MEND_NOTIFY_DISPATCH_BATCH are numbers") from None
    if not hours or any(not 1 <= h <= 24 * 14 for h in hours):
        raise ConfigError("MEND_NOTIFY_REMINDER_HOURS must hold 1 to 336 hours, e.g. 48,24")
    if not (0.05 <= dispatch <= 60 and 0.1 <= sweep <= 3600 and 0.1 <= remote <= 60 and 0.1 <= channel_timeout <= 120):
        raise ConfigError("MEND_NOTIFY_DISPATCH_SECONDS 0.05-60, MEND_NOTIFY_REMINDER_SWEEP_SECONDS 0.1-3600, "
                          "MEND_NOTIFY_REMOTE_TIMEOUT_SECONDS 0.1-60, MEND_NOTIFY_CHANNEL_TIMEOUT_SECONDS 0.1-120")
    if not 1 <= port <= 65535 or not 1 <= batch <= 1000:
        raise ConfigError("MEND_SMTP_PORT must be a port and MEND_NOTIFY_DISPATCH_BATCH 1-1000")
    if not 2 * channel_timeout < lease <= 3600:
        # A claim must outlast a send, or a slow send would be taken up and sent again.
        raise ConfigError("MEND_NOTIFY_LEASE_SECONDS must be more than twice MEND_NOTIFY_CHANNEL_TIMEOUT_SECONDS "
                          "and at most 3600")
    rules = RuleSettings(reminder_hours=hours, dispatch_batch=batch, lease_seconds=lease,
                         letter_font=env.get("MEND_NOTIFY_LETTER_FONT") or None,
                         service_name=env.get("MEND_NOTIFY_SERVICE_NAME", RuleSettings.service_name),
                         service_email=env.get("MEND_NOTIFY_SERVICE_EMAIL", RuleSettings.service_email),
                         service_phone=env.get("MEND_NOTIFY_SERVICE_PHONE", RuleSettings.service_phone))
    return NotifySettings(
        rules=rules, dispatch_seconds=dispatch, reminder_sweep_seconds=sweep, remote_timeout=remote,
        smtp_host=env.get("MEND_SMTP_HOST", "127.0.0.1"), smtp_port=port,
        smtp_from=env.get("MEND_SMTP_FROM", "Mend Restorative Justice <no-reply@mend.invalid>"),
        smtp_starttls=env.get("MEND_SMTP_STARTTLS", "false").lower() in ("1", "true", "yes"),
        smtp_username=env.get("MEND_SMTP_USERNAME", ""), smtp_password=secret(env, "MEND_SMTP_PASSWORD"),
        provider_url=env.get("MEND_PROVIDER_URL", ""), provider_api_key=secret(env, "MEND_PROVIDER_API_KEY"),
        channel_timeout=channel_timeout,
        # Referrers' webhook URLs are theirs to choose: never let one reach inside our network.
        webhook_public_only=env.get("MEND_NOTIFY_WEBHOOK_PUBLIC_ONLY", "true").lower() in ("1", "true", "yes"))


def channel_senders(settings: NotifySettings):
    from .adapters.channels import ProviderClient, SmtpSender, WebhookSender
    from .adapters.senders import ChannelSenders
    smtp = SmtpSender(settings.smtp_host, settings.smtp_port, sender=settings.smtp_from,
                      timeout=settings.channel_timeout, starttls=settings.smtp_starttls,
                      username=settings.smtp_username or None, password=settings.smtp_password or None)
    provider = ProviderClient(settings.provider_url, settings.provider_api_key, timeout=settings.channel_timeout) \
        if settings.provider_url else None
    return ChannelSenders(smtp, provider, WebhookSender(timeout=settings.channel_timeout,
                                                        public_only=settings.webhook_public_only))


def build_api(ctx: ApiContext) -> ApiParts:
    from .adapters.cases_client import RpcCaseContacts
    from .entrypoints import grpc_api
    settings = notify_settings(os.environ)
    store = PlatformStore(ctx.db, platform, "notifications")
    uow_factory = UnitsOfWork(lambda: NotificationsUnitOfWork(ctx.db, store))
    cases = RpcCaseContacts(ctx.rpc, settings.remote_timeout)
    return ApiParts(authenticator=Authenticator(ctx.token_verifier),
                    grpc_registrars=grpc_api.registrars(uow_factory, cases),
                    grpc_service_names=grpc_api.SERVICE_NAMES)


SERVICE = ServiceDefinition(
    name="notifications", metadata=metadata, platform=platform,
    migrations_dir=Path(__file__).resolve().parent / "migrations",
    build_api=build_api, worker_class_path="mend_notifications.entrypoints.worker:NotificationsWorker",
)
