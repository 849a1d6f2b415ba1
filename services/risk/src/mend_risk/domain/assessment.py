"""One participant's risk assessment at one stage of a case, and its life: made, approved or
rejected by a manager who is not the assessor, then expired (by time, a change of stage or new
information) or superseded by a newer one.

An assessment is made once and never edited: new facts mean a new assessment, which is why
expiry and supersession are the only ways out of "approved". The version field belongs to the
repository (optimistic locking); nothing here changes it.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Sequence

from .rules import Conclusion, Factor, RuleSet
from .vocabulary import CASE_STAGES, LIVE_STATUSES

MAX_VALID_DAYS = 366     # a configuration slip (days for hours, say) must not make an assessment last for ever


class AssessmentRuleBroken(Exception):
    """A change the assessment cannot take. The message is for the user; `rule` names the rule."""

    def __init__(self, message: str, rule: str = ""):
        super().__init__(message)
        self.message = message
        self.rule = rule


class InvalidAssessment(AssessmentRuleBroken):
    """The input to an assessment is wrong (a bad factor, a missing field): the message names each problem."""


def _aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidAssessment(f"{name} must be a date and time with a time zone", "aware_time")


@dataclass
class Assessment:
    assessment_id: str
    case_id: str
    county: str
    participant_id: str
    stage: str                      # the case's stage when it was made
    assessor: str                   # the principal's subject
    assessed_at: datetime
    factors: tuple[Factor, ...]
    conclusion: Conclusion
    status: str                     # one of STATUSES
    expires_at: datetime
    approved_by: str | None = None  # a manager, or "rule:<version>" when no manager's approval was needed
    approved_at: datetime | None = None
    rejected_by: str | None = None
    rejected_at: datetime | None = None
    rejection_reason: str | None = None
    expired_at: datetime | None = None      # when it stopped being in force: expired or superseded
    expiry_reason: str | None = None
    supersedes: str | None = None
    version: int = 1

    # -- what it says ------------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        """Still standing: awaiting approval or approved (it may still have run out of time)."""
        return self.status in LIVE_STATUSES

    @property
    def approved_by_rule(self) -> bool:
        return self.status == "approved" and (self.approved_by or "").startswith("rule:")

    def has_run_out(self, now: datetime) -> bool:
        return now >= self.expires_at

    def is_current(self, now: datetime) -> bool:
        return self.status == "approved" and now < self.expires_at

    def allows_direct_contact(self, now: datetime) -> bool:
        return self.is_current(now) and self.conclusion.decision == "direct_allowed"

    # -- changes -----------------------------------------------------------------------------------
    def _four_eyes(self, by: str, who: str) -> None:
        if not isinstance(by, str) or not by.strip():
            raise InvalidAssessment(f"the {who} must be named", "actor_named")
        if by == self.assessor:
            raise AssessmentRuleBroken(f"the {who} cannot be the assessor", "four_eyes")

    def _awaiting(self, action: str) -> None:
        if self.status != "awaiting_approval":
            raise AssessmentRuleBroken(f"only an assessment awaiting approval can be {action}; this one is "
                                       f"{self.status.replace('_', ' ')}", "awaiting_approval")

    def approve(self, by: str, at: datetime) -> None:
        _aware(at, "at")
        self._awaiting("approved")
        self._four_eyes(by, "approver")
        if self.has_run_out(at):
            # Approving something already out of date would make the gate trust stale facts.
            raise AssessmentRuleBroken(f"the assessment ran out at {self.expires_at.isoformat()}; "
                                       "a new assessment is due", "not_run_out")
        self.status, self.approved_by, self.approved_at = "approved", by, at

    def reject(self, by: str, at: datetime, reason: str) -> None:
        _aware(at, "at")
        self._awaiting("rejected")
        self._four_eyes(by, "manager rejecting it")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidAssessment("a rejection needs a reason", "reason_required")
        self.status, self.rejected_by, self.rejected_at, self.rejection_reason = "rejected", by, at, reason.strip()

    def expire(self, reason: str, at: datetime) -> bool:
        """Take a standing assessment out of force. False (and no change) if it no longer stands."""
        _aware(at, "at")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidAssessment("expiry needs a reason", "reason_required")
        if not self.live:
            return False
        self.status, self.expired_at, self.expiry_reason = "expired", at, reason.strip()
        return True

    def supersede(self, at: datetime, by_assessment: str | None = None) -> bool:
        """A newer assessment replaces this one. False (and no change) if it no longer stands:
        an expired or rejected assessment keeps that status on the record."""
        _aware(at, "at")
        if not self.live:
            return False
        self.status, self.expired_at = "superseded", at
        self.expiry_reason = f"superseded by assessment {by_assessment}" if by_assessment else \
            "superseded by a new assessment"
        return True

    def expire_if_run_out(self, now: datetime) -> bool:
        if not (self.live and self.has_run_out(now)):
            return False
        return self.expire(f"its validity ran out at {self.expires_at.isoformat()}; a new assessment is due", now)

    def expire_on_stage_change(self, new_stage: str, at: datetime) -> bool:
        """Risk is reassessed at every stage: an assessment made at another stage stops standing."""
        if new_stage == self.stage:
            return False
        return self.expire(f"the case moved from {self.stage.replace('_', ' ')} to {new_stage.replace('_', ' ')}; "
                           "a new assessment is due", at)

    def expire_on_new_information(self, what: str, at: datetime) -> bool:
        if not isinstance(what, str) or not what.strip():
            raise InvalidAssessment("say what the new information is", "reason_required")
        return self.expire(f"new information: {what.strip()}; a new assessment is due", at)


def assess(*, case_id: str, county: str, participant_id: str, stage: str, assessor: str,
           factors: Sequence[Factor], rules: RuleSet, now: datetime, valid_days: int,
           offence_flags: Sequence[str] = (), participant_role: str = "victim", is_youth: bool = False,
           supersedes: str | None = None, assessment_id: str | None = None) -> Assessment:
    """Apply the rules to the factors. The assessment awaits a manager's approval if the rules say
    it needs one; otherwise it stands at once, approved by the rules ("rule:<version>")."""
    problems = [f"{name} is required" for name, value in (("case_id", case_id), ("county", county),
                                                           ("participant_id", participant_id), ("assessor", assessor))
                if not isinstance(value, str) or not value.strip()]
    if stage not in CASE_STAGES:
        problems.append(f"stage: {stage!r} is not an open stage of a case ({', '.join(CASE_STAGES)})")
    if isinstance(valid_days, bool) or not isinstance(valid_days, int) or not 1 <= valid_days <= MAX_VALID_DAYS:
        problems.append(f"valid_days must be a whole number of days from 1 to {MAX_VALID_DAYS}")
    if supersedes is not None and (not isinstance(supersedes, str) or not supersedes.strip()):
        problems.append("supersedes must name an assessment")
    conclusion = None
    try:
        conclusion = rules.evaluate(tuple(factors), offence_flags=tuple(offence_flags),
                                    participant_role=participant_role, is_youth=bool(is_youth))
    except ValueError as e:
        problems.append(str(e))
    if problems:
        raise InvalidAssessment("; ".join(problems), "input")
    _aware(now, "now")
    assert conclusion is not None
    needs_approval = conclusion.needs_approval
    return Assessment(
        assessment_id=assessment_id or str(uuid.uuid4()), case_id=case_id, county=county,
        participant_id=participant_id, stage=stage, assessor=assessor, assessed_at=now, factors=tuple(factors),
        conclusion=conclusion, status="awaiting_approval" if needs_approval else "approved",
        expires_at=now + timedelta(days=valid_days),
        approved_by=None if needs_approval else f"rule:{conclusion.rule_version}",
        approved_at=None if needs_approval else now, supersedes=supersedes)
