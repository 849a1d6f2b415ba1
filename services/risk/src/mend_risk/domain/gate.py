"""The safety gate: may this meeting go ahead with these participants, given their risk assessments?

Which assessments count. An assessment *stands* for a participant while it is awaiting approval
or approved and its time has not run out (and, when the caller gives the case's stage, it was
made at that stage). Normally a participant has one standing assessment, since a new one
supersedes the old. If there are several, all of them must pass and the strictest decides: an
assessment awaiting approval blocks even beside an approved one, because it holds newer facts a
manager has not yet seen. This is what makes withdrawing an approval unable to open the gate.

By meeting kind:
- conference (a direct meeting): every participant needs standing assessments that are all
  approved, all allow direct contact, and whose control measures the meeting's plan provides.
- indirect_session: every participant needs standing assessments that are all approved and none
  says not suitable. Control measures are the facilitators' to observe; the gate does not check
  them against a plan.
- preparation_visit and pre_prison_visit: a facilitator's one-to-one visit, which is how an
  assessment gets made, so none is needed; but no visit goes ahead while a standing assessment
  (approved or not) says the participant is not suitable. A prison_venue measure does not bar a
  visit: where the visit happens is the prison's and the facilitator's arrangement.
- supervision: facilitators only; allowed, but denied if any participant is named.
Any other kind, no participants named for a meeting that needs them, or a plan naming a measure
that does not exist: denied. Reasons are sorted by participant id so the same facts always give
the same answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Collection, Mapping, Sequence

from .assessment import Assessment
from .vocabulary import (DECISION_LABELS, DECISIONS, DIRECT_MEETING_KINDS, LEVEL_LABELS, MEASURE_LABELS, MEASURES,
                         MEETING_KINDS)

PREPARATION_KINDS = ("preparation_visit", "pre_prison_visit")


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    reasons: tuple[str, ...]


def _newest_first(assessments: Sequence[Assessment]) -> list[Assessment]:
    return sorted(assessments, key=lambda a: (a.assessed_at, a.assessment_id), reverse=True)


def standing(assessments: Sequence[Assessment], now: datetime, case_stage: str | None = None) -> list[Assessment]:
    """The assessments that still stand, newest first."""
    return [a for a in _newest_first(assessments)
            if a.live and not a.has_run_out(now) and (case_stage is None or a.stage == case_stage)]


def _why_none(history: Sequence[Assessment], now: datetime, case_stage: str | None) -> str:
    if not history:
        return "none has been made"
    latest = _newest_first(history)[0]
    if latest.live and latest.has_run_out(now):
        return f"the latest, {latest.assessment_id}, ran out at {latest.expires_at.isoformat()}"
    if latest.live and case_stage is not None and latest.stage != case_stage:
        return (f"the latest, {latest.assessment_id}, was made at {latest.stage.replace('_', ' ')}; "
                f"the case is at {case_stage.replace('_', ' ')}")
    if latest.status == "rejected":
        return f"the latest, {latest.assessment_id}, was rejected: {latest.rejection_reason or 'no reason given'}"
    return f"the latest, {latest.assessment_id}, is {latest.status.replace('_', ' ')}" + \
        (f": {latest.expiry_reason}" if latest.expiry_reason else "")


@dataclass(frozen=True)
class _Standing:
    """What a participant's standing assessments say together."""
    assessments: tuple[Assessment, ...]
    awaiting: tuple[Assessment, ...]
    decision: str              # the strictest of them
    measures: frozenset[str]   # everything any of them requires

    @property
    def latest(self) -> Assessment:
        return self.assessments[0]

    @property
    def deciding(self) -> str:
        """The ids of the assessments whose decision is the strictest."""
        return _ids([a for a in self.assessments if a.conclusion.decision == self.decision])


def _standing_for(pid: str, assessments: Mapping[str, Sequence[Assessment]], now: datetime,
                  case_stage: str | None) -> tuple[_Standing | None, list[Assessment]]:
    # An assessment filed under the wrong participant does not count for either.
    history = [a for a in assessments.get(pid, ()) if a.participant_id == pid]
    found = standing(history, now, case_stage)
    if not found:
        return None, history
    return _Standing(tuple(found), tuple(a for a in found if a.status == "awaiting_approval"),
                     max((a.conclusion.decision for a in found), key=DECISIONS.index),
                     frozenset(m for a in found for m in a.conclusion.measures)), history


def _ids(found: Sequence[Assessment]) -> str:
    return ", ".join(a.assessment_id for a in found)


def _measure_list(measures) -> str:
    return ", ".join(MEASURE_LABELS[m] for m in MEASURES if m in measures)


def _cleared_text(s: _Standing) -> str:
    a = s.latest
    return f"cleared by assessment {a.assessment_id}, level {LEVEL_LABELS[a.conclusion.level]}"


def _check_participant(kind: str, pid: str, s: _Standing | None, history: list[Assessment], plan: frozenset[str],
                       now: datetime, case_stage: str | None) -> tuple[bool, str]:
    """(passes, reason) for one participant at one meeting kind."""
    who = f"participant {pid}"
    if kind in PREPARATION_KINDS:
        blocking = [a for a in s.assessments if a.conclusion.decision == "not_suitable"] if s else []
        if blocking:
            return False, f"{who}: assessment says not suitable ({_ids(blocking)})"
        return True, f"{who}: " + (_cleared_text(s) if s and not s.awaiting else "no assessment bars a visit")
    if s is None:
        return False, f"{who}: no current approved risk assessment ({_why_none(history, now, case_stage)})"
    if s.awaiting:
        return False, f"{who}: assessment awaiting a manager's approval ({_ids(s.awaiting)})"
    if kind == "indirect_session":
        if s.decision == "not_suitable":
            return False, f"{who}: assessment says not suitable ({s.deciding})"
        return True, f"{who}: {_cleared_text(s)}, {DECISION_LABELS[s.decision]}"
    # A direct meeting.
    if s.decision != "direct_allowed":
        return False, f"{who}: assessment says {DECISION_LABELS[s.decision]} ({s.deciding})"
    missing = s.measures - plan
    if missing:
        return False, f"{who}: the plan does not provide: {_measure_list(missing)}"
    provided = f"; the plan provides {_measure_list(s.measures)}" if s.measures else ""
    return True, f"{who}: {_cleared_text(s)}{provided}"


def check_meeting_safety(*, meeting_kind: str, participant_ids: Sequence[str],
                         assessments: Mapping[str, Sequence[Assessment]], plan_measures: Collection[str],
                         now: datetime, case_stage: str | None = None) -> GateDecision:
    """Allow or deny a meeting, with reasons (see the module's docstring for the rules).

    assessments: every known assessment of each participant, any status. plan_measures: the
    control measures the meeting's plan provides. case_stage: if given, only assessments made at
    that stage count."""
    if meeting_kind not in MEETING_KINDS:
        return GateDecision(False, (f"unknown meeting kind {meeting_kind!r} (one of {', '.join(MEETING_KINDS)})",))
    if isinstance(participant_ids, str):
        return GateDecision(False, ("participant_ids must be a list of participant ids",))
    problems = []
    unknown = sorted(str(m) for m in plan_measures if m not in MEASURES)
    if unknown:
        problems.append(f"the plan names measures that do not exist: {', '.join(unknown)}")
    if meeting_kind in DIRECT_MEETING_KINDS and "indirect_only" in plan_measures:
        problems.append(f"a {meeting_kind.replace('_', ' ')} is a direct meeting; its plan cannot be indirect only")
    if any(not isinstance(p, str) or not p.strip() for p in participant_ids):
        problems.append("a participant id is blank")
    pids = sorted({p for p in participant_ids if isinstance(p, str) and p.strip()})
    if meeting_kind == "supervision":
        if participant_ids:
            problems.append("supervision is for facilitators: no participant takes part")
        return GateDecision(not problems, tuple(problems) or ("facilitator supervision involves no participant",))
    if not pids and not problems:
        problems.append(f"no participants named for the {meeting_kind.replace('_', ' ')}")
    if problems:
        return GateDecision(False, tuple(problems))

    plan = frozenset(plan_measures)
    results = []
    for pid in pids:
        s, history = _standing_for(pid, assessments, now, case_stage)
        results.append(_check_participant(meeting_kind, pid, s, history, plan, now, case_stage))
    allowed = all(ok for ok, _ in results)
    # A denial gives what stands in the way; an allowance gives what cleared each participant.
    return GateDecision(allowed, tuple(text for ok, text in results if ok == allowed))


def case_clearance(*, participant_ids: Sequence[str], assessments: Mapping[str, Sequence[Assessment]],
                   now: datetime, case_stage: str | None = None) -> dict[str, tuple[bool, str]]:
    """Per participant: may the case go on with them? Cleared when their standing assessments
    are all approved and none says not suitable (indirect only still lets the case go on)."""
    answer: dict[str, tuple[bool, str]] = {}
    for pid in sorted(set(participant_ids)):
        s, history = _standing_for(pid, assessments, now, case_stage)
        if s is None:
            answer[pid] = (False, f"no current approved risk assessment ({_why_none(history, now, case_stage)})")
        elif s.awaiting:
            answer[pid] = (False, f"assessment {_ids(s.awaiting)} is awaiting a manager's approval")
        elif s.decision == "not_suitable":
            answer[pid] = (False, f"assessment {s.deciding} says not suitable")
        else:
            answer[pid] = (True, _cleared_text(s))
    return answer
