"""pytest fixtures that run a real Mend region: every process kind as a subprocess, on a private
RabbitMQ vhost, once on SQLite and once on PostgreSQL."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from mend_common.testing.plugin import PostgresDatabase, RabbitVhost
from mend_common.testing.provider_server import ProviderServer
from mend_common.testing.smtp_sink import SmtpSink

from .client import CasesClient, ReferralsClient, RiskClient
from .stack import MendStack

# Fast retries in tests; the attempts limit stays a real, checked number.
TEST_ENV = {"MEND_RETRY_DELAY_MS": "200", "MEND_MAX_DELIVERY_ATTEMPTS": "3", "MEND_API_KEY_CACHE_SECONDS": "0",
            "MEND_LOG_LEVEL": "INFO",
            # The overdue-item and Victims' Code sweep runs every second, so tests see it work.
            "MEND_CASES_SWEEP_SECONDS": "1", "MEND_CASES_REMOTE_TIMEOUT_SECONDS": "2",
            "MEND_RISK_SWEEP_SECONDS": "1", "MEND_RISK_REMOTE_TIMEOUT_SECONDS": "2",
            "MEND_NOTIFY_DISPATCH_SECONDS": "0.2", "MEND_NOTIFY_REMINDER_SWEEP_SECONDS": "1",
            "MEND_NOTIFY_REMOTE_TIMEOUT_SECONDS": "2", "MEND_NOTIFY_CHANNEL_TIMEOUT_SECONDS": "3",
            "MEND_SCHEDULING_REMOTE_TIMEOUT_SECONDS": "2",
            # Signs facilitators' calendar feed URLs (at least 32 characters; without it the
            # scheduling api serves no feed).
            "MEND_SCHEDULING_CALENDAR_SECRET": "test-only-calendar-feed-secret-0123456789",
            # The local webhook receiver listens on 127.0.0.1, which production refuses.
            "MEND_NOTIFY_WEBHOOK_PUBLIC_ONLY": "false"}


def start_stack_on(vhost: RabbitVhost, tmp_path_factory, backend: str, **kwargs) -> MendStack:
    """Start a region on an existing vhost, with a PostgreSQL database of its own (so no event left
    in an earlier region's outbox reaches this one). The caller ends it with stop_stack."""
    database = PostgresDatabase(f"mend_stack_{uuid.uuid4().hex[:10]}").create() if backend == "postgresql" else None
    # The outside world the notifications service writes to: a mail server and an SMS and letter provider.
    smtp, provider = SmtpSink().start(), ProviderServer().start()
    env = dict(TEST_ENV, MEND_SMTP_HOST="127.0.0.1", MEND_SMTP_PORT=str(smtp.port), MEND_PROVIDER_URL=provider.base_url,
               MEND_PROVIDER_API_KEY=provider.api_key)
    env.update(kwargs.pop("extra_env", {}))
    stack = MendStack(var_dir=tmp_path_factory.mktemp(f"stack-{backend}"), amqp_uri=vhost.uri,
                      database_url=database.url if database else None, extra_env=env, **kwargs)
    stack.vhost, stack.backend, stack.private_database = vhost, backend, database
    stack.smtp, stack.provider = smtp, provider
    try:
        stack.start()
    except Exception:
        stop_stack(stack)
        raise
    return stack


def stop_stack(stack: MendStack) -> None:
    """Stop the region's processes and drop its database (the vhost is the caller's)."""
    try:
        stack.stop()
    finally:
        stack.smtp.stop()
        stack.provider.stop()
        if stack.private_database is not None:
            stack.private_database.drop()


def start_stack(tmp_path_factory, backend: str, **kwargs) -> MendStack:
    """A region on a vhost of its own; stop_stack and vhost.delete() end it."""
    vhost = RabbitVhost(f"mend-test-{uuid.uuid4().hex[:10]}").create()
    try:
        return start_stack_on(vhost, tmp_path_factory, backend, **kwargs)
    except Exception:
        vhost.delete()
        raise


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, tmp_path_factory):
    """A running region (referrals and cases, api and worker each) for one test module."""
    running = start_stack(tmp_path_factory, request.param)
    yield running
    stop_stack(running)
    running.vhost.delete()


@dataclass
class Tenant:
    """A county of its own (so tests never see each other's data) with two agencies and staff."""
    stack: MendStack
    county: str
    agency_id: str
    api_key: str
    other_agency_id: str
    other_api_key: str

    def agency_client(self, other: bool = False) -> ReferralsClient:
        return ReferralsClient(self.stack.grpc_target("referrals"), api_key=self.other_api_key if other else self.api_key)

    def staff_token(self, *roles: str, subject: str = "staff-1", counties: list[str] | None = None) -> str:
        return self.stack.token(list(roles), counties or [self.county], subject=subject)

    def cases_client(self, *roles: str, subject: str = "staff-1") -> CasesClient:
        return CasesClient(self.stack.grpc_target("cases"), token=self.staff_token(*(roles or ("coordinator",)), subject=subject))

    def notifications_stub(self, *roles: str, subject: str = "staff-1"):
        """The NotificationService stub and the metadata carrying a staff token."""
        import grpc
        from mend.notifications.v1 import notifications_pb2_grpc
        stub = notifications_pb2_grpc.NotificationServiceStub(grpc.insecure_channel(self.stack.grpc_target("notifications")))
        return stub, (("authorization", f"Bearer {self.staff_token(*(roles or ('coordinator',)), subject=subject)}"),)

    def risk_client(self, *roles: str, subject: str = "staff-1") -> RiskClient:
        return RiskClient(self.stack.grpc_target("risk"), token=self.staff_token(*(roles or ("coordinator",)), subject=subject))

    def scheduling_stub(self, *roles: str, subject: str = "staff-1"):
        """The SchedulingService stub and the metadata carrying a staff token."""
        import grpc
        from mend.scheduling.v1 import scheduling_pb2_grpc
        stub = scheduling_pb2_grpc.SchedulingServiceStub(grpc.insecure_channel(self.stack.grpc_target("scheduling")))
        return stub, (("authorization", f"Bearer {self.staff_token(*(roles or ('coordinator',)), subject=subject)}"),)


def make_tenant(stack: MendStack) -> Tenant:
    county = f"county-{uuid.uuid4().hex[:8]}"
    admin = ReferralsClient(stack.grpc_target("referrals"), token=stack.token(["admin"], [county], subject="it-admin"))
    first = admin.create_agency("Test Constabulary", county, "police")
    second = admin.create_agency("Test Probation", county, "probation")
    return Tenant(stack, county, first.agency_id, admin.issue_key(first.agency_id).api_key,
                  second.agency_id, admin.issue_key(second.agency_id).api_key)


@pytest.fixture
def tenant(stack) -> Tenant:
    return make_tenant(stack)


def referral_draft(county: str, **overrides) -> dict:
    draft = {
        "agency_reference": f"REF/{uuid.uuid4().hex[:12]}",
        "county": county,
        "offence": {"type": "criminal damage to a car", "category": "criminal_damage", "date": "2026-09-14",
                    "reported_date": "2026-09-15", "hate_crime": False},
        "initiated_by": "victim_led",
        "participants": [
            {"role": "victim", "given_name": "Jo", "family_name": "Bloggs", "age": 37, "consent_to_contact": True,
             "contact": {"email": "jo@example.org", "preferred_channel": "email"},
             "vulnerabilities": ["intimidated"]},
            {"role": "responsible_person", "given_name": "Lee", "family_name": "Doe", "date_of_birth": "2009-01-20"},
            {"role": "parent_or_guardian", "given_name": "Pat", "family_name": "Doe"},
        ],
        "reason": "Victim would like an apology and to understand why.",
    }
    draft.update(overrides)
    return draft
