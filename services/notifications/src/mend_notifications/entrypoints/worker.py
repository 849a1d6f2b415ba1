"""The notifications nameko worker: turns other services' events into messages, sends what is
due, reminds people before meetings and follows the provider's delivery reports."""
from __future__ import annotations

import os
import time

import kombu
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from nameko.timer import timer

from mend_common.amqp import events_exchange
from mend_common.envelope import Envelope
from mend_common.nameko_ext import TimedRpcProxy, UnitOfWorkProvider, WorkerBase, event_batch_subscriber

from ..adapters.cases_client import RpcCaseContacts
from ..adapters.tables import platform
from ..bootstrap import channel_senders, notify_settings
from ..service_layer import services
from ..service_layer.unit_of_work import NotificationsUnitOfWork

SETTINGS = notify_settings(os.environ)
DEAD_LETTERS = "notifications.delivery.dlq"
# One dispatch loop per process at a time, however the timer fires.
_DISPATCHING = Semaphore(1)
_SENDERS = None


def _senders():
    global _SENDERS
    if _SENDERS is None:
        _SENDERS = channel_senders(SETTINGS)
    return _SENDERS


class DeadLetterQueue(DependencyProvider):
    """Declares the durable queue that keeps every message failed for good (notification_failed),
    for an operator to inspect and replay."""

    def setup(self):
        with kombu.Connection(self.container.config["AMQP_URI"], connect_timeout=10) as conn:
            exchange = kombu.Exchange(events_exchange("notifications"), "topic", durable=True)
            kombu.Queue(DEAD_LETTERS, exchange, routing_key="notification_failed", durable=True)(conn.channel()).declare()


class NotificationsWorker(WorkerBase):
    name = "notifications"
    uow = UnitOfWorkProvider(NotificationsUnitOfWork, None, platform, "notifications")
    cases_rpc = TimedRpcProxy("cases")
    dead_letters = DeadLetterQueue()

    def _cases(self):
        return RpcCaseContacts(self.cases_rpc, SETTINGS.remote_timeout)

    def _each(self, bodies, handle):
        for body in bodies:
            handle(Envelope.from_dict(body))

    # -- the referrer hears how its referral is going ------------------------------------
    @event_batch_subscriber("referrals", "referral_received")
    def on_referral_received(self, bodies):
        self._each(bodies, lambda e: services.on_referral_event(self.uow, e, "notifications.on_referral_received", SETTINGS.rules))

    @event_batch_subscriber("cases", "case_opened")
    def on_case_opened(self, bodies):
        self._each(bodies, lambda e: services.on_referral_event(self.uow, e, "notifications.on_case_opened", SETTINGS.rules))

    @event_batch_subscriber("cases", "eligibility_decided")
    def on_eligibility_decided(self, bodies):
        self._each(bodies, lambda e: services.on_referral_event(self.uow, e, "notifications.on_eligibility_decided", SETTINGS.rules))

    @event_batch_subscriber("cases", "case_closed")
    def on_case_closed(self, bodies):
        self._each(bodies, lambda e: services.on_referral_event(self.uow, e, "notifications.on_case_closed", SETTINGS.rules))

    # -- participants ----------------------------------------------------------------------
    @event_batch_subscriber("cases", "consent_recorded")
    def on_consent_recorded(self, bodies):
        self._each(bodies, lambda e: services.on_consent_recorded(self.uow, self._cases(), e,
                                                                  "notifications.on_consent_recorded", SETTINGS.rules))

    @event_batch_subscriber("scheduling", "meeting_scheduled")
    def on_meeting_scheduled(self, bodies):
        self._each(bodies, lambda e: services.on_meeting_event(self.uow, self._cases(), e,
                                                               "notifications.on_meeting_scheduled", SETTINGS.rules))

    @event_batch_subscriber("scheduling", "meeting_rescheduled")
    def on_meeting_rescheduled(self, bodies):
        self._each(bodies, lambda e: services.on_meeting_event(self.uow, self._cases(), e,
                                                               "notifications.on_meeting_rescheduled", SETTINGS.rules))

    @event_batch_subscriber("scheduling", "meeting_cancelled")
    def on_meeting_cancelled(self, bodies):
        self._each(bodies, lambda e: services.on_meeting_event(self.uow, self._cases(), e,
                                                               "notifications.on_meeting_cancelled", SETTINGS.rules))

    # -- staff -----------------------------------------------------------------------------
    @event_batch_subscriber("cases", "outcome_item_overdue")
    def on_outcome_item_overdue(self, bodies):
        self._each(bodies, lambda e: services.on_staff_alert(self.uow, e, "notifications.on_outcome_item_overdue", SETTINGS.rules))

    @event_batch_subscriber("cases", "victims_code_breach")
    def on_victims_code_breach(self, bodies):
        self._each(bodies, lambda e: services.on_staff_alert(self.uow, e, "notifications.on_victims_code_breach", SETTINGS.rules))

    @event_batch_subscriber("risk", "risk_approval_requested")
    def on_risk_approval_requested(self, bodies):
        self._each(bodies, lambda e: services.on_staff_alert(self.uow, e, "notifications.on_risk_approval_requested", SETTINGS.rules))

    # -- sending ---------------------------------------------------------------------------
    @timer(interval=SETTINGS.dispatch_seconds)
    def dispatch(self):
        """Send what is due until nothing is, or a few seconds have passed (then the next tick)."""
        if not _DISPATCHING.acquire(blocking=False):
            return
        try:
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                outcome = services.dispatch_due(self.uow, _senders(), SETTINGS.rules)
                if not any(outcome.values()):
                    break
        finally:
            _DISPATCHING.release()

    @timer(interval=SETTINGS.reminder_sweep_seconds)
    def remind(self):
        services.send_reminders(self.uow, self._cases(), SETTINGS.rules)

    @timer(interval=60)
    def delivery_reports(self):
        services.poll_provider_status(self.uow, _senders())
