"""Prometheus metrics shared by every process. Services add their own business counters."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

GRPC_REQUESTS = Counter("mend_grpc_requests_total", "gRPC calls handled", ["service", "method", "code"])
GRPC_LATENCY = Histogram("mend_grpc_request_seconds", "gRPC call latency", ["service", "method"], buckets=LATENCY_BUCKETS)
HTTP_REQUESTS = Counter("mend_http_requests_total", "HTTP requests handled", ["service", "route", "status"])
HTTP_LATENCY = Histogram("mend_http_request_seconds", "HTTP request latency", ["service", "route"], buckets=LATENCY_BUCKETS)

OUTBOX_PUBLISHED = Counter("mend_outbox_published_total", "Events the relay published with a broker confirm", ["service", "event_type"])
OUTBOX_PUBLISH_FAILURES = Counter("mend_outbox_publish_failures_total", "Relay batches that failed and will be retried", ["service", "reason"])
OUTBOX_PENDING = Gauge("mend_outbox_pending", "Events committed but not yet confirmed by the broker", ["service"])
OUTBOX_OLDEST_AGE = Gauge("mend_outbox_oldest_age_seconds", "Age of the oldest unpublished event", ["service"])
OUTBOX_LAG = Histogram("mend_outbox_lag_seconds", "Time from commit to broker confirm", ["service"], buckets=LATENCY_BUCKETS)

EVENTS_CONSUMED = Counter("mend_events_consumed_total", "Events handled", ["consumer", "event_type", "outcome"])
EVENTS_FAILED = Counter("mend_events_failed_total", "Event handling attempts that raised", ["consumer", "event_type"])
DEAD_LETTERED = Counter("mend_dead_lettered_total", "Events moved to a dead-letter queue", ["consumer", "event_type"])
CONSUMER_LAG = Histogram("mend_consumer_lag_seconds", "Time from the event occurring to its handling", ["consumer", "event_type"], buckets=LATENCY_BUCKETS)
EVENT_HANDLING = Histogram("mend_event_handling_seconds", "Time spent handling one event, or one batch of events", ["consumer", "event_type"], buckets=LATENCY_BUCKETS)
EVENT_BATCH_SIZE = Histogram("mend_event_batch_size", "Events handled together in one transaction", ["consumer", "event_type"], buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))

WRITE_GROUP_SIZE = Histogram("mend_write_group_size", "Units of work written together in one statement (group commit)", buckets=(1, 2, 4, 8, 16, 32, 64))
WRITE_GROUP_SPLITS = Counter("mend_write_group_splits_total", "Merged writes that failed and were retried one unit of work at a time")

AUDIT_RECORDS = Counter("mend_audit_records_total", "Audit records written", ["service", "action"])


def exposition() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
