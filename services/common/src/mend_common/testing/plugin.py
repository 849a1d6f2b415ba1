"""pytest fixtures for real infrastructure: a private RabbitMQ vhost per test module (through the
management API) and a private PostgreSQL database per test session."""
from __future__ import annotations

import os
import uuid

import pytest
import requests

RABBIT_MANAGEMENT = os.environ.get("MEND_TEST_RABBIT_MANAGEMENT", "http://127.0.0.1:15672")
RABBIT_HOST = os.environ.get("MEND_TEST_RABBIT_HOST", "127.0.0.1:5672")
RABBIT_AUTH = ("guest", "guest")
PG_ADMIN_URL = os.environ.get("MEND_TEST_PG_ADMIN_URL", "postgresql://mend:mend@127.0.0.1:5432/postgres")


class RabbitVhost:
    def __init__(self, name: str):
        self.name = name
        self.uri = f"amqp://guest:guest@{RABBIT_HOST}/{name}"

    def create(self) -> "RabbitVhost":
        r = requests.put(f"{RABBIT_MANAGEMENT}/api/vhosts/{self.name}", auth=RABBIT_AUTH, timeout=10)
        r.raise_for_status()
        r = requests.put(f"{RABBIT_MANAGEMENT}/api/permissions/{self.name}/guest", auth=RABBIT_AUTH, timeout=10,
                         json={"configure": ".*", "write": ".*", "read": ".*"})
        r.raise_for_status()
        return self

    def delete(self) -> None:
        requests.delete(f"{RABBIT_MANAGEMENT}/api/vhosts/{self.name}", auth=RABBIT_AUTH, timeout=10)

    def queue(self, name: str) -> dict | None:
        r = requests.get(f"{RABBIT_MANAGEMENT}/api/queues/{self.name}/{requests.utils.quote(name, safe='')}",
                         auth=RABBIT_AUTH, timeout=10)
        return r.json() if r.status_code == 200 else None

    def get_messages(self, queue: str, count: int = 10) -> list[dict]:
        r = requests.post(
            f"{RABBIT_MANAGEMENT}/api/queues/{self.name}/{requests.utils.quote(queue, safe='')}/get",
            auth=RABBIT_AUTH, timeout=10,
            json={"count": count, "ackmode": "ack_requeue_true", "encoding": "auto"})
        r.raise_for_status()
        return r.json()


@pytest.fixture(scope="module")
def rabbit_vhost():
    vhost = RabbitVhost(f"mend-test-{uuid.uuid4().hex[:10]}").create()
    yield vhost
    vhost.delete()


@pytest.fixture(scope="module")
def amqp_uri(rabbit_vhost) -> str:
    return rabbit_vhost.uri


class PostgresDatabase:
    def __init__(self, name: str):
        self.name = name
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        self.url = f"{base}/{name}"

    def _admin(self, sql: str) -> None:
        import psycopg
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def create(self) -> "PostgresDatabase":
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self

    def drop(self) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_database():
    db = PostgresDatabase(f"mend_test_{uuid.uuid4().hex[:10]}").create()
    yield db
    db.drop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db')}/mend.db"
    return request.getfixturevalue("postgres_database").url
