"""The scheduling nameko worker: answers the cases service's questions about facilitators, and
cancels meetings when a case closes or a participant withdraws consent."""
from __future__ import annotations

from nameko.rpc import rpc

from mend_common.envelope import Envelope
from mend_common.nameko_ext import RpcCaller, UnitOfWorkProvider, WorkerBase, event_batch_subscriber

from ..adapters.tables import platform
from ..service_layer import services
from ..service_layer.unit_of_work import SchedulingUnitOfWork


class SchedulingWorker(WorkerBase):
    name = "scheduling"
    uow = UnitOfWorkProvider(SchedulingUnitOfWork, None, platform, "scheduling")
    caller = RpcCaller()

    @event_batch_subscriber("cases", "case_closed")
    def on_case_closed(self, bodies):
        services.on_case_events(self.uow, [Envelope.from_dict(b) for b in bodies], "scheduling.on_case_closed")

    @event_batch_subscriber("cases", "consent_withdrawn")
    def on_consent_withdrawn(self, bodies):
        services.on_case_events(self.uow, [Envelope.from_dict(b) for b in bodies], "scheduling.on_consent_withdrawn")

    @rpc
    def facilitator_records(self, county, facilitator_ids):
        """For the cases service's allocation checks."""
        return services.facilitator_records(self.uow, self.caller(), county, facilitator_ids)
