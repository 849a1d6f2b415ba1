"""RabbitMQ goes away for the referrals service (its api with the outbox relay, and its worker
both reach the broker through a TCP proxy the test cuts): partner agencies can still submit,
referrals are stored, and every one of them opens exactly one case once the broker is back."""
from __future__ import annotations

import time
import uuid

import pytest

from mend.referrals.v1 import referrals_pb2
from mend_cli.pytest_stack import make_tenant, referral_draft
from mend_common.testing.plugin import RABBIT_HOST, RabbitVhost
from tests.support.mend import cases_per_referral, list_all_cases, scalar
from mend_cli.pytest_stack import start_stack_on, stop_stack
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def proxied(request, tmp_path_factory):
    """A stack whose referrals processes talk to RabbitMQ only through a proxy."""
    host, port = RABBIT_HOST.rsplit(":", 1)
    proxy = TcpProxy(host, int(port)).start()
    vhost = RabbitVhost(f"mend-test-{uuid.uuid4().hex[:10]}").create()
    through_proxy = f"amqp://guest:guest@127.0.0.1:{proxy.port}/{vhost.name}"
    try:
        stack = start_stack_on(vhost, tmp_path_factory, request.param,
                               service_env={"referrals": {"MEND_AMQP_URI": through_proxy}})
    except Exception:
        proxy.close()
        vhost.delete()
        raise
    yield stack, proxy
    stop_stack(stack)
    proxy.close()
    vhost.delete()


def _submit(tenant, n: int) -> list[str]:
    agency = tenant.agency_client()
    ids = []
    for _ in range(n):
        submitted = agency.submit(referral_draft(tenant.county), request_id=f"req-{uuid.uuid4().hex}")
        assert submitted.status == referrals_pb2.REFERRAL_STATUS_RECEIVED
        ids.append(submitted.referral_id)
    return ids


def test_referrals_are_accepted_while_the_broker_is_unreachable_and_open_cases_after(proxied):
    stack, proxy = proxied
    tenant = make_tenant(stack)
    assert proxy.live_connections >= 1, "the referrals processes should be connected through the proxy"

    proxy.cut()
    try:
        ids = _submit(tenant, 5)
        agency = tenant.agency_client()
        for rid in ids:
            assert agency.get(rid).status == referrals_pb2.REFERRAL_STATUS_RECEIVED
        time.sleep(2.0)
        # Nothing reached the broker: no case, and the events wait in the outbox.
        assert cases_per_referral(stack, ids) == {rid: 0 for rid in ids}
        assert scalar(stack, "referrals", "SELECT count(*) FROM outbox") >= len(ids)
        assert proxy.refused >= 1, "the relay should have tried to reconnect"
    finally:
        proxy.restore()

    wait_for(lambda: all(n == 1 for n in cases_per_referral(stack, ids).values()), timeout=45, interval=0.2)
    assert cases_per_referral(stack, ids) == {rid: 1 for rid in ids}
    listed = list_all_cases(tenant.cases_client("coordinator"), tenant.county)
    assert sorted(c.referral_id for c in listed) == sorted(ids)
    # The referrals worker reconnected too: each referral's status follows its case.
    wait_for(lambda: all(agency.get(rid).status == referrals_pb2.REFERRAL_STATUS_CASE_OPENED for rid in ids),
             timeout=30, interval=0.2)
    wait_for(lambda: scalar(stack, "referrals", "SELECT count(*) FROM outbox") == 0, timeout=10)


def test_an_outage_in_the_middle_of_traffic_loses_and_doubles_nothing(proxied):
    """Connections die while events are in flight (some published but not yet confirmed):
    anything unconfirmed is published again, and the consumer absorbs the duplicates."""
    stack, proxy = proxied
    tenant = make_tenant(stack)
    before = _submit(tenant, 10)
    proxy.cut()
    try:
        during = _submit(tenant, 10)
    finally:
        proxy.restore()
    after = _submit(tenant, 10)
    ids = before + during + after
    wait_for(lambda: all(n == 1 for n in cases_per_referral(stack, ids).values()), timeout=45, interval=0.2)
    listed = list_all_cases(tenant.cases_client("coordinator"), tenant.county, page_size=7)
    assert sorted(c.referral_id for c in listed) == sorted(ids)
