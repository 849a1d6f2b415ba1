"""mend_common.nameko_ext.previous_attempts: reading RabbitMQ's x-death header."""
from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")            # eventlet's deprecation notice, raised on import by nameko
    from mend_common.nameko_ext import previous_attempts

Q = "evt-referrals-referral_received--cases.on_referral_received"


def death(queue=Q, reason="rejected", count=1, **extra):
    return {"queue": queue, "reason": reason, "count": count, "exchange": "", "routing-keys": [queue], **extra}


@pytest.mark.parametrize("headers", [None, {}, {"x-death": None}, {"x-death": []}, {"other": "header"}])
def test_a_first_delivery_has_no_previous_attempts(headers):
    assert previous_attempts(headers, Q) == 0


def test_counts_rejections_from_this_queue():
    assert previous_attempts({"x-death": [death(count=3)]}, Q) == 3


def test_finds_this_queue_among_several_deaths():
    headers = {"x-death": [
        death(queue=f"{Q}.retry", reason="expired", count=4),       # came back from the retry queue
        death(queue="some.other.queue", count=9),
        death(count=2),
    ]}
    assert previous_attempts(headers, Q) == 2


@pytest.mark.parametrize("entry", [
    death(queue="some.other.queue", count=5),
    death(reason="expired", count=5),
    death(reason="maxlen", count=5),
])
def test_ignores_deaths_elsewhere_or_for_other_reasons(entry):
    assert previous_attempts({"x-death": [entry]}, Q) == 0


def test_a_death_without_a_count_counts_as_none():
    entry = death()
    del entry["count"]
    assert previous_attempts({"x-death": [entry]}, Q) == 0


def test_count_given_as_text_is_read_as_a_number():
    assert previous_attempts({"x-death": [death(count="4")]}, Q) == 4
