"""The referrals nameko worker: follows case events to keep referral status current."""
from __future__ import annotations

from mend_common.envelope import Envelope
from mend_common.nameko_ext import UnitOfWorkProvider, WorkerBase, event_subscriber

from ..adapters.tables import platform
from ..service_layer import services
from ..service_layer.unit_of_work import ReferralsChainedUnitOfWork, ReferralsUnitOfWork


class ReferralsWorker(WorkerBase):
    name = "referrals"
    uow = UnitOfWorkProvider(ReferralsUnitOfWork, ReferralsChainedUnitOfWork, platform, "referrals")

    @event_subscriber("cases", "case_opened")
    def on_case_opened(self, body):
        services.record_case_opened(self.uow, Envelope.from_dict(body), "referrals.on_case_opened")
