"""The referrals nameko worker: follows case events to keep referral status current."""
from __future__ import annotations

from mend_common.envelope import Envelope
from mend_common.nameko_ext import WorkerBase, event_subscriber
from mend_common.outbox import PlatformStore

from ..adapters.tables import platform
from ..service_layer import services
from ..service_layer.unit_of_work import ReferralsUnitOfWork


class ReferralsWorker(WorkerBase):
    name = "referrals"

    def _uow(self):
        store = PlatformStore(self.db, platform, "referrals")
        return lambda: ReferralsUnitOfWork(self.db, store)

    @event_subscriber("cases", "case_opened")
    def on_case_opened(self, body):
        services.record_case_opened(self._uow(), Envelope.from_dict(body), "referrals.on_case_opened")
