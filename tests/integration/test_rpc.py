"""nameko RPC through mend_common on the real broker: RpcClient (api processes) and
TimedRpcProxy (workers). Every call has a timeout, remote errors and missing services come back
as errors the caller can act on, and the caller's correlation id reaches every hop."""
from __future__ import annotations

import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mend_common.logs import correlation_id_var
from mend_common.rpc import RpcClient, RpcError, RpcTimeout, ServiceUnavailable
from mend_common.testing.processes import ManagedProcess
from tests.support.waiting import wait_for

PROBE = Path(__file__).resolve().parents[1] / "support" / "rpc_probe.py"
WORKER_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def probe(rabbit_vhost, tmp_path_factory):
    process = ManagedProcess("rpc-probe", [sys.executable, str(PROBE), rabbit_vhost.uri, str(WORKER_TIMEOUT)],
                             env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROBE.parents[2])}, ready_url=None,
                             log_path=tmp_path_factory.mktemp("rpc") / "probe.log").start()
    client = RpcClient(rabbit_vhost.uri, timeout=5)

    def answers():
        try:
            return client.call("rpcprobe", "add", 1) == 1
        except ServiceUnavailable:
            return False
    try:
        wait_for(answers, timeout=60, interval=0.2)
        yield client
    finally:
        client.close()
        process.stop()


def test_a_call_returns_the_remote_result(probe):
    assert probe.call("rpcprobe", "add", 2, b=3) == 5


def test_the_callers_correlation_id_reaches_the_worker_and_the_next_hop(probe):
    token = correlation_id_var.set("corr-rpc-test-1")
    try:
        assert probe.call("rpcprobe", "whoami") == "corr-rpc-test-1"
        assert probe.call("rpcprobe", "ask_whoami") == {"here": "corr-rpc-test-1", "there": "corr-rpc-test-1"}
    finally:
        correlation_id_var.reset(token)


def test_a_remote_exception_comes_back_with_its_type_and_message(probe):
    with pytest.raises(RpcError) as info:
        probe.call("rpcprobe", "fail", "bad input")
    assert info.value.exc_type == "ValueError" and info.value.message == "bad input"


def test_a_call_that_outlives_its_timeout_raises_and_the_next_call_is_not_confused(probe):
    with pytest.raises(RpcTimeout):
        probe.call("rpcprobe", "slow", 3, timeout=0.5)
    # The late reply to the abandoned call must not be taken for this one's.
    assert probe.call("rpcprobe", "add", 40, b=2) == 42


def test_a_service_nobody_runs_is_unavailable_not_a_hang(probe):
    with pytest.raises(ServiceUnavailable):
        probe.call("nobody-runs-this", "anything", timeout=30)


def test_worker_to_worker_calls_time_out_and_report_missing_services(probe):
    assert probe.call("rpcprobe", "ask_slow", WORKER_TIMEOUT * 3) == "RpcTimeout"
    assert probe.call("rpcprobe", "ask_nobody") == "ServiceUnavailable"


def test_calls_from_many_threads_each_get_their_own_answer(probe):
    def call(i):
        token = correlation_id_var.set(f"corr-{i}")
        try:
            return probe.call("rpcprobe", "add", i, b=1000), probe.call("rpcprobe", "whoami")
        finally:
            correlation_id_var.reset(token)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(40)))
    assert results == [(i + 1000, f"corr-{i}") for i in range(40)]


def test_an_unreachable_broker_is_unavailable(probe):
    client = RpcClient(f"amqp://guest:guest@127.0.0.1:1/{uuid.uuid4().hex}", timeout=2, connect_timeout=1)
    with pytest.raises(ServiceUnavailable):
        client.call("rpcprobe", "add", 1)
