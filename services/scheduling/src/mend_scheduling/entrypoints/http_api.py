"""HTTP side of the scheduling api: the facilitators' calendar subscription feeds.

Calendar apps (Outlook, Google, Apple) subscribe to a URL and poll it without logging in, so
the feed is reached by a per-facilitator secret token in the URL rather than a bearer token:
GET /calendars/facilitators/{facilitator_id}.ics?token=... Staff get the token (and the feed)
over gRPC with FacilitatorCalendar. A wrong token is a plain 404, the same as no such feed.
"""
from __future__ import annotations

from werkzeug.wrappers import Response

from mend_common.errors import MendError
from mend_common.http import Route, json_response

from ..service_layer import services


def routes(uow_factory, settings) -> list[Route]:
    def feed(request, principal, facilitator_id):
        try:
            data = services.facilitator_calendar_by_token(uow_factory, settings, facilitator_id,
                                                          request.args.get("token", ""))
        except MendError:
            return json_response(404, {"error": "not_found", "message": "no such calendar"})
        return Response(data, status=200, content_type="text/calendar; charset=utf-8",
                        headers={"Cache-Control": "private, max-age=300"})

    return [Route("GET", "/calendars/facilitators/{facilitator_id}.ics", feed, public=True)]
