"""Bounded waiting for conditions that become true asynchronously (events, relays, retries)."""
from __future__ import annotations

import time


def wait_for(predicate, timeout=20.0, interval=0.05):
    """Poll predicate until it returns something truthy and return that; fail after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
