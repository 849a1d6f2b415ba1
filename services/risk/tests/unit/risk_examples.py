"""Factors, assessments and principals shared by the risk unit tests."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from mend_common.auth import Principal
from mend_risk.domain.assessment import Assessment, assess
from mend_risk.domain.rules import Conclusion, Factor, current_rules
from mend_risk.domain.vocabulary import DECISIONS, EVIDENCE_SOURCES, FACTOR_KINDS, LEVELS, SEVERITIES

PROPERTY = settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
AT = datetime(2026, 6, 10, 10, 0, tzinfo=timezone.utc)
RULES = current_rules()
ASSESSOR = "staff:coordinator-1"
MANAGER = "staff:manager-1"
VALID_DAYS = 90

# Short names for the measures, so expected results fit in a table row.
M = {"C": "co_facilitation", "S": "separate_arrival_and_waiting", "P": "supporter_present", "V": "prison_venue",
     "I": "indirect_only", "X": "specialist_facilitator"}


def measures(letters: str) -> tuple[str, ...]:
    return tuple(sorted(M[c] for c in letters))


def factor(kind: str, severity: str = "medium", source: str = "police", notes: str = "") -> Factor:
    return Factor(kind, severity, source, notes)


def make(factors=(), *, participant_id="p-victim", stage="risk_and_safety", assessor=ASSESSOR, at=AT,
         valid_days=VALID_DAYS, **kw) -> Assessment:
    return assess(case_id="case-1", county="cumbria", participant_id=participant_id, stage=stage, assessor=assessor,
                  factors=list(factors), rules=RULES, now=at, valid_days=valid_days, **kw)


def approved(factors=(), **kw) -> Assessment:
    """An assessment that stands approved, by a manager if the rules asked for one."""
    a = make(factors, **kw)
    if a.status == "awaiting_approval":
        a.approve(MANAGER, a.assessed_at + timedelta(hours=1))
    return a


_ids = itertools.count(1)


def stub(participant_id: str, *, status: str = "approved", decision: str = "direct_allowed", measures=(),
         level: str = "low", assessed_at: datetime = AT, valid_days: int = VALID_DAYS, stage: str = "risk_and_safety",
         assessment_id: str | None = None) -> Assessment:
    """An assessment with a given conclusion, for the gate (which reads only what it concludes)."""
    conclusion = Conclusion(level, tuple(sorted(set(measures))), decision, status != "approved", (), RULES.version)
    return Assessment(
        assessment_id=assessment_id or f"a{next(_ids):04d}", case_id="case-1", county="cumbria",
        participant_id=participant_id, stage=stage, assessor=ASSESSOR, assessed_at=assessed_at, factors=(),
        conclusion=conclusion, status=status, expires_at=assessed_at + timedelta(days=valid_days),
        approved_by=MANAGER if status == "approved" else None,
        approved_at=assessed_at if status == "approved" else None)


def staff(*roles, counties=("cumbria",), subject="u1") -> Principal:
    return Principal(kind="staff", subject=subject, roles=frozenset(roles), counties=frozenset(counties))


# -- strategies ---------------------------------------------------------------------------------
factors_st = st.builds(Factor, kind=st.sampled_from(FACTOR_KINDS), severity=st.sampled_from(SEVERITIES),
                       source=st.sampled_from(EVIDENCE_SOURCES), notes=st.just(""))
offence_flags_st = st.lists(st.sampled_from(["domestic_abuse", "sexual_offence", "hate_crime", "serious_violence",
                                             "stalking_or_harassment", "most_serious", "arson"]), max_size=3)
PIDS = ("p1", "p2", "p3")


# What the gate reads of an assessment, as a few ready-made shapes (fewer draws: faster tests).
_MEASURE_SETS = ((), ("co_facilitation",), ("co_facilitation", "separate_arrival_and_waiting"), ("prison_venue",),
                 ("specialist_facilitator", "supporter_present"))
_SHAPES = [(status, decision, tuple(sorted(set(chosen) | ({"indirect_only"} if decision != "direct_allowed" else set()))),
            LEVELS[i % len(LEVELS)])
           for i, (status, decision, chosen) in enumerate(itertools.product(
               ("approved", "awaiting_approval", "rejected", "expired", "superseded"), DECISIONS, _MEASURE_SETS))]
# Standing ones (approved, awaiting approval) come up more often: they are what the gate weighs.
_STANDING_SHAPES = [shape for shape in _SHAPES if shape[0] in ("approved", "awaiting_approval")]
_MOSTLY_STANDING = _SHAPES + _STANDING_SHAPES * 6
_SHAPES += _STANDING_SHAPES * 2
# Days on one small grid, so that several assessments stand at once and "now" often falls exactly
# on an expiry (the gate's test for now is the NOW strategy: AT plus 0 to 10 days).
DAYS_AGO = st.integers(0, 10)
VALID = st.integers(1, 20)
NOW_OFFSET = st.integers(0, 10)


@st.composite
def assessment_st(draw, participant_id: str, shapes=tuple(_SHAPES), valid=VALID):
    status, decision, chosen, level = draw(st.sampled_from(shapes))
    return stub(participant_id, status=status, decision=decision, measures=chosen, level=level,
                assessed_at=AT - timedelta(days=draw(DAYS_AGO)), valid_days=draw(valid),
                stage=draw(st.sampled_from(["risk_and_safety", "preparation"])))


@st.composite
def histories_st(draw, well_formed: bool = False, crowded: bool = False):
    """Assessments per participant, any status. Well formed: at most one still stands in status
    (awaiting approval or approved) per participant, as the service keeps it. Crowded: several
    standing at once is common (the service should not let it happen; the gate must still be safe)."""
    history = {}
    shapes = tuple(_MOSTLY_STANDING if crowded else _SHAPES)
    for pid in PIDS:
        found = draw(st.lists(assessment_st(pid, shapes, st.sampled_from(range(1, 41)) if crowded else VALID),
                              min_size=1 if crowded else 0, max_size=4 if crowded else 3))
        if well_formed:
            live_seen = False
            for a in sorted(found, key=lambda a: (a.assessed_at, a.assessment_id), reverse=True):
                if a.live and live_seen:
                    a.status = "superseded"
                live_seen = live_seen or a.live
        history[pid] = found
    return history
