"""HTTP/JSON for partner agencies: POST /v1/referrals and GET /v1/referrals/{id}.
The contract is openapi.yaml next to this file, served at /v1/openapi.yaml."""
from __future__ import annotations

from pathlib import Path

from werkzeug.wrappers import Response

from mend_common.http import Route, read_json

from ..service_layer import services

OPENAPI_PATH = Path(__file__).with_name("openapi.yaml")


def referral_to_json(referral) -> dict:
    return {
        "referral_id": referral.referral_id,
        "agency_reference": referral.agency_reference,
        "county": referral.county,
        "status": referral.status,
        "case_id": referral.case_id,
        "received_at": referral.received_at.isoformat(),
        "history": [{"status": h["status"], "at": h["at"].isoformat(), "detail": h["detail"]} for h in referral.history],
    }


def routes(uow_factory) -> list[Route]:
    def submit(request, principal):
        body = read_json(request)
        referral, replayed = services.submit_referral(
            uow_factory, principal, request.headers.get("Idempotency-Key", "").strip(), body)
        return (200 if replayed else 201), {
            "referral_id": referral.referral_id, "status": referral.status,
            "received_at": referral.received_at.isoformat(), "replayed": replayed,
        }, {"Location": f"/v1/referrals/{referral.referral_id}"}

    def get(request, principal, referral_id):
        return 200, referral_to_json(services.get_referral(uow_factory, principal, referral_id))

    def openapi(request, principal):
        return Response(OPENAPI_PATH.read_bytes(), status=200, content_type="application/yaml")

    return [
        Route("POST", "/v1/referrals", submit),
        Route("GET", "/v1/referrals/{referral_id}", get),
        Route("GET", "/v1/openapi.yaml", openapi, public=True),
    ]
