"""Custom stacks for tests that need special wiring (a proxy in front of the broker, a separate
relay process, ...), built like mend_cli.pytest_stack.start_stack but on a vhost the test made."""
from __future__ import annotations

import contextlib
import uuid
from typing import Iterator

from mend_cli.pytest_stack import TEST_ENV
from mend_cli.stack import MendStack
from mend_common.testing.plugin import RabbitVhost


def start_stack_on(vhost: RabbitVhost, tmp_path_factory, request, backend: str, **kwargs) -> MendStack:
    """Start a region on an existing vhost; the caller stops it (and deletes the vhost)."""
    database_url = request.getfixturevalue("postgres_database").url if backend == "postgresql" else None
    env = dict(TEST_ENV)
    env.update(kwargs.pop("extra_env", {}))
    stack = MendStack(var_dir=tmp_path_factory.mktemp(f"stack-{backend}"), amqp_uri=vhost.uri,
                      database_url=database_url, extra_env=env, **kwargs)
    stack.start()
    stack.vhost, stack.backend = vhost, backend
    return stack


@contextlib.contextmanager
def private_stack(tmp_path_factory, request, backend: str, **kwargs) -> Iterator[MendStack]:
    """A region on a vhost of its own, for a module whose tests kill, stop or rewire processes;
    stopped and its vhost deleted afterwards, even if it failed to start."""
    vhost = RabbitVhost(f"mend-test-{uuid.uuid4().hex[:10]}").create()
    try:
        stack = start_stack_on(vhost, tmp_path_factory, request, backend, **kwargs)
        try:
            yield stack
        finally:
            stack.stop()
    finally:
        vhost.delete()
