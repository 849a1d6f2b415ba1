"""CPU per SubmitReferral spent in Mend's own code (the gRPC interceptor, servicer, validation,
service layer, write chain and psycopg), one thread, real PostgreSQL, no network and no other
load. The VM's speed still moves it, but far less than the end-to-end figures, which makes it
the one to watch when optimising the intake path. A benchmark: it prints, it never fails."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc

from mend.referrals.v1 import referrals_pb2
from mend_cli.pytest_stack import referral_draft
from mend_common.auth import Authenticator, CachedKeyLookup, Principal
from mend_common.db import Database
from mend_common.grpc_server import MendInterceptor
from mend_common.outbox import PlatformStore
from mend_common.proto_convert import plain_to_message
from mend_common.testing.plugin import PostgresDatabase
from mend_common.uow import UnitsOfWork
from mend_referrals.adapters.tables import platform
from mend_referrals.entrypoints.grpc_api import ReferralServicer
from mend_referrals.service_layer import services
from mend_referrals.service_layer.unit_of_work import ReferralsChainedUnitOfWork, ReferralsUnitOfWork

METHOD = "/mend.referrals.v1.ReferralService/SubmitReferral"


class _Context:
    """What the interceptor and servicer use of a grpc.ServicerContext."""

    def __init__(self, metadata):
        self._metadata = metadata

    def invocation_metadata(self):
        return self._metadata

    def set_trailing_metadata(self, metadata):
        pass

    def code(self):
        return None

    def abort_with_status(self, status):
        raise RuntimeError(status)

    def abort(self, code, details):
        raise RuntimeError(details)


def measure(calls: int = 3000, warmup: int = 300) -> dict:
    database = PostgresDatabase(f"mend_bench_cpu_{uuid.uuid4().hex[:8]}").create()
    try:
        migrate = Path(sys.executable).with_name("mend-migrate")
        subprocess.run([str(migrate), "referrals"], env=dict(os.environ, MEND_DATABASE_URL=database.url),
                       check=True, capture_output=True)
        db = Database(database.url, "referrals")
        store = PlatformStore(db, platform, "referrals")
        uows = UnitsOfWork(lambda: ReferralsUnitOfWork(db, store), lambda: ReferralsChainedUnitOfWork(db, store))
        admin = Principal(kind="staff", subject="bench", roles=frozenset({"admin"}), counties=frozenset({"cumbria"}))
        agency = services.create_agency(uows, admin, "Bench Constabulary", "cumbria", "police")
        _, api_key = services.issue_agency_key(uows, admin, agency["agency_id"], "bench")
        lookup = CachedKeyLookup(lambda key_id, secret: services.authenticate_agency_key(uows, key_id, secret), ttl=600)
        interceptor = MendInterceptor("referrals", Authenticator(None, lookup))
        plain = grpc.unary_unary_rpc_method_handler(ReferralServicer(uows).SubmitReferral)
        handler = interceptor.intercept_service(lambda _: plain, type("Details", (), {"method": METHOD})())
        template = referrals_pb2.SubmitReferralRequest()
        plain_to_message(referral_draft("cumbria"), template.referral)
        metadata = (("x-api-key", api_key),)

        def requests(n: int, tag: str):
            for i in range(n):
                request = referrals_pb2.SubmitReferralRequest()
                request.CopyFrom(template)
                request.request_id = f"{tag}-{i:06d}-{uuid.uuid4().hex[:8]}"
                request.referral.agency_reference = f"{tag}/{i}/{uuid.uuid4().hex[:8]}"
                yield request

        for request in requests(warmup, "warm"):
            handler.unary_unary(request, _Context(metadata))
        batch = list(requests(calls, "run"))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for request in batch:
            handler.unary_unary(request, _Context(metadata))
        cpu1, wall1 = time.process_time(), time.perf_counter()
        db.dispose()
        return {"calls": calls, "cpu_ms_per_call": (cpu1 - cpu0) / calls * 1000,
                "wall_ms_per_call": (wall1 - wall0) / calls * 1000}
    finally:
        database.drop()


if __name__ == "__main__":
    result = measure()
    print(f"SubmitReferral through Mend's code: {result['cpu_ms_per_call']:.3f} ms CPU per call "
          f"({result['wall_ms_per_call']:.3f} ms wall, {result['calls']} calls, one thread)")
