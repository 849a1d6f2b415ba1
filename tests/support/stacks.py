"""Custom stacks for tests that need special wiring (a proxy in front of the broker, a separate
relay process, ...), on a vhost the test made."""
from __future__ import annotations

import contextlib
import uuid
from typing import Iterator

from mend_cli.pytest_stack import start_stack_on, stop_stack
from mend_cli.stack import MendStack
from mend_common.testing.plugin import RabbitVhost


@contextlib.contextmanager
def private_stack(tmp_path_factory, request, backend: str, **kwargs) -> Iterator[MendStack]:
    """A region on a vhost of its own, for a module whose tests kill, stop or rewire processes;
    stopped and its vhost deleted afterwards, even if it failed to start."""
    vhost = RabbitVhost(f"mend-test-{uuid.uuid4().hex[:10]}").create()
    try:
        stack = start_stack_on(vhost, tmp_path_factory, backend, **kwargs)
        try:
            yield stack
        finally:
            stop_stack(stack)
    finally:
        vhost.delete()
