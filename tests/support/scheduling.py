"""Driving the real scheduling service over gRPC in cross-service tests."""
from __future__ import annotations

from datetime import date, timedelta

from mend.scheduling.v1 import scheduling_pb2 as pb

WEEKDAYS_9_TO_5 = [pb.WeeklyHours(weekday=d, start="09:00", end="17:00") for d in ("mon", "tue", "wed", "thu", "fri")]


def register_facilitator(tenant, name: str, *, training_level: str = "advanced", active: bool = True,
                         kind: str = "staff", hours: float = 30, languages=("en",)) -> pb.Facilitator:
    """A facilitator on the county's register, vetted until half a year from now."""
    stub, auth = tenant.scheduling_stub("coordinator", subject="coord-1")
    vetted = date.today() - timedelta(days=180)
    saved = stub.SaveFacilitator(pb.Facilitator(
        county=tenant.county, name=name, email=f"{name.split()[0].lower()}@example.org", kind=kind, home_lat=51.58,
        home_lon=-2.99, availability=WEEKDAYS_9_TO_5, max_hours_per_week=hours, vetting_date=vetted.isoformat(),
        vetting_expires_on=(vetted + timedelta(days=360)).isoformat(), training_level=training_level,
        languages=list(languages)), metadata=auth, timeout=10)
    if not active:
        retired = pb.Facilitator()
        retired.CopyFrom(saved)
        retired.active = False
        saved = stub.SaveFacilitator(retired, metadata=auth, timeout=10)
    return saved
