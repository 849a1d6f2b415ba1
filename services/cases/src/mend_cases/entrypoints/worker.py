"""The cases nameko worker: opens a case for every referral received."""
from __future__ import annotations

from mend_common.envelope import Envelope
from mend_common.nameko_ext import UnitOfWorkProvider, WorkerBase, event_subscriber

from ..adapters.tables import platform
from ..service_layer import services
from ..service_layer.unit_of_work import CasesChainedUnitOfWork, CasesUnitOfWork


class CasesWorker(WorkerBase):
    name = "cases"
    uow = UnitOfWorkProvider(CasesUnitOfWork, CasesChainedUnitOfWork, platform, "cases")

    @event_subscriber("referrals", "referral_received")
    def on_referral_received(self, body):
        services.open_case_for_referral(self.uow, Envelope.from_dict(body), "cases.on_referral_received")
