"""Helpers for tests that work a running Mend stack from the outside: publish raw events to
RabbitMQ, read a process's Prometheus metrics, look straight into a service's database, and
list every case of a county page by page."""
from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

import kombu
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from mend_cli.pytest_stack import referral_draft
from mend_common.db import Database

REFERRALS_EXCHANGE = "referrals.events"
CASES_QUEUE = "evt-referrals-referral_received--cases.on_referral_received"
CASES_DLQ = f"{CASES_QUEUE}.dlq"
CASES_CONSUMER = "cases.on_referral_received"


# -- events --------------------------------------------------------------------------------
def referral_received_envelope(county: str, *, referral_id: str | None = None, agency_id: str | None = None,
                               referral: dict | None = None, event_id: str | None = None) -> dict[str, Any]:
    """A referral_received envelope as the referrals service would publish it."""
    now = datetime.now(timezone.utc)
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "type": "referral_received",
        "schema_version": 1,
        "occurred_at": now.isoformat(),
        "county": county,
        "correlation_id": f"test{uuid.uuid4().hex}",
        "source": "referrals",
        "payload": {
            "referral_id": referral_id or str(uuid.uuid4()),
            "agency_id": agency_id or str(uuid.uuid4()),
            "received_at": now.isoformat(),
            "referral": referral if referral is not None else referral_draft(county),
        },
    }


def publish(amqp_uri: str, body: dict | list | str | bytes, *, routing_key: str = "referral_received",
            exchange: str = REFERRALS_EXCHANGE, message_id: str | None = None,
            content_type: str = "application/json") -> None:
    """Publish one persistent message with a broker confirm; fail if no queue takes it."""
    if isinstance(body, (dict, list)):
        if message_id is None and isinstance(body, dict):
            message_id = str(body.get("event_id") or "") or None
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    with kombu.Connection(amqp_uri, connect_timeout=5, transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer()
        properties = {"message_id": message_id} if message_id else {}
        producer.publish(body, exchange=exchange, routing_key=routing_key, content_type=content_type,
                         content_encoding="utf-8", delivery_mode=2, mandatory=True, retry=False, timeout=10,
                         **properties)


def publish_many(amqp_uri: str, bodies: list[dict], *, routing_key: str = "referral_received",
                 exchange: str = REFERRALS_EXCHANGE) -> None:
    """Publish a burst of events on one connection, each confirmed, as fast as the broker takes
    them: consumers see them queued up together."""
    with kombu.Connection(amqp_uri, connect_timeout=5, transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer()
        for body in bodies:
            producer.publish(json.dumps(body).encode(), exchange=exchange, routing_key=routing_key,
                             content_type="application/json", content_encoding="utf-8", delivery_mode=2,
                             mandatory=True, retry=False, timeout=10, message_id=body["event_id"])


def queue_ready_count(amqp_uri: str, queue: str) -> int:
    """Messages ready in a queue, from the broker itself (not the management API's sampled stats)."""
    with kombu.Connection(amqp_uri, connect_timeout=5) as conn:
        _, count, _ = conn.default_channel.queue_declare(queue=queue, passive=True)
        return count


# -- metrics -------------------------------------------------------------------------------
def metric_value(url: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus sample over every series whose labels include `labels`."""
    body = requests.get(url, timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def worker_metrics_url(stack, service: str = "cases", index: int = 0) -> str:
    return f"http://127.0.0.1:{stack.ports[service].worker_http[index]}/metrics"


# -- databases -----------------------------------------------------------------------------
@contextmanager
def service_db(stack, service: str) -> Iterator[Database]:
    """The service's own database (on PostgreSQL, its schema in the shared database)."""
    db = Database(stack.database_for(service), service, pool_size=2)
    try:
        yield db
    finally:
        db.dispose()


def scalar(stack, service: str, sql: str, **params) -> Any:
    with service_db(stack, service) as db, db.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def rows(stack, service: str, sql: str, **params) -> list:
    with service_db(stack, service) as db, db.engine.connect() as conn:
        return conn.execute(text(sql), params).all()


def cases_per_referral(stack, referral_ids) -> dict[str, int]:
    """How many cases each referral has, straight from the cases database."""
    wanted = list(referral_ids)
    counts = {rid: 0 for rid in wanted}
    with service_db(stack, "cases") as db, db.engine.connect() as conn:
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            names = ", ".join(f":r{j}" for j in range(len(chunk)))
            for rid, n in conn.execute(text(f"SELECT referral_id, count(*) FROM cases WHERE referral_id IN ({names}) "
                                            "GROUP BY referral_id"), {f"r{j}": r for j, r in enumerate(chunk)}):
                counts[rid] = n
    return counts


# -- the public API ------------------------------------------------------------------------
def list_all_cases(client, county: str, page_size: int = 200, max_pages: int = 100) -> list:
    """Every case of a county through ListCases, following next_page_token."""
    cases, token = [], ""
    for _ in range(max_pages):
        page = client.list(county=county, page_size=page_size, page_token=token)
        cases.extend(page.cases)
        token = page.next_page_token
        if not token:
            return cases
    raise AssertionError(f"ListCases did not finish within {max_pages} pages")
