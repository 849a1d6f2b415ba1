"""Who may facilitate a case: the rule, over facilitator records from wherever they live
(the scheduling service owns them; the cases service asks it through an adapter)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

TRAINING_LEVELS = ("foundation", "intermediate", "advanced")
# Serious and sensitive or complex cases need advanced training.
TRAINING_NEEDED = {"standard": "foundation", "serious": "advanced", "sensitive_complex": "advanced"}
MAX_FACILITATORS = 2     # a lead and a co-facilitator


@dataclass(frozen=True)
class FacilitatorRecord:
    facilitator_id: str
    county: str
    active: bool
    vetting_expires_on: date | None
    training_level: str
    name: str = ""


def allocation_problems(facilitator_ids: list[str], records: dict[str, FacilitatorRecord], county: str,
                        seriousness: str, today: date) -> list[tuple[str, str]]:
    """(rule, description) for every reason these facilitators cannot take this case."""
    problems: list[tuple[str, str]] = []
    if not 1 <= len(facilitator_ids) <= MAX_FACILITATORS:
        problems.append(("facilitator_count", "allocate one or two facilitators"))
    if len(set(facilitator_ids)) != len(facilitator_ids):
        problems.append(("facilitators_distinct", "the same facilitator is named twice"))
    needed = TRAINING_NEEDED[seriousness]
    for fid in dict.fromkeys(facilitator_ids):
        record = records.get(fid)
        if record is None:
            problems.append(("facilitator_known", f"facilitator {fid} is not on the facilitator register"))
            continue
        who = record.name or fid
        if record.county != county:
            problems.append(("facilitator_county", f"facilitator {who} does not work in {county}"))
        if not record.active:
            problems.append(("facilitator_active", f"facilitator {who} is not active"))
        if record.vetting_expires_on is None or record.vetting_expires_on < today:
            problems.append(("facilitator_vetting", f"facilitator {who} has no current vetting"))
        level = record.training_level if record.training_level in TRAINING_LEVELS else None
        if level is None or TRAINING_LEVELS.index(level) < TRAINING_LEVELS.index(needed):
            problems.append(("facilitator_training", f"facilitator {who} is trained to {record.training_level or 'no level'}; "
                                                     f"a {seriousness.replace('_', ' ')} case needs {needed}"))
    return problems
