"""The risk rules: factors in, a level, control measures, a decision and whether a manager must
approve out, each conclusion with the rules that led to it.

The rules themselves are data (rules/risk-rules-v1.json), versioned and written for a manager
to read; this module only knows how to apply them and refuses data it cannot apply safely. Every
rule can only raise things (the level, the measures, the strictness of the decision, the need
for approval) and the most restrictive answer wins, so recording one more risk never makes an
assessment less cautious. A rule is named by where it sits in the data, for example
"factors.domestic_abuse.high", so a reason can always be traced back to the line that caused it.
"""
from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from .vocabulary import (DECISION_LABELS, DECISIONS, EVIDENCE_SOURCES, FACTOR_KINDS, FACTOR_LABELS, LEVEL_LABELS,
                         LEVELS, MEASURES, OFFENCE_FLAG_LABELS, PARTICIPANT_ROLES, SEVERITIES, SOURCE_LABELS)

DEFAULT_RULES_PATH = Path(__file__).with_name("rules") / "risk-rules-v1.json"
MAX_VERSION_LENGTH = 40     # it is stored with every assessment


@dataclass(frozen=True)
class Factor:
    kind: str          # one of FACTOR_KINDS
    severity: str      # one of SEVERITIES
    source: str        # one of EVIDENCE_SOURCES
    notes: str = ""


@dataclass(frozen=True)
class Reason:
    conclusion: str    # "level:high", "measure:co_facilitation", "decision:indirect_only", "approval:required"
    rule_id: str       # where the rule sits in the data, e.g. "factors.domestic_abuse.high"
    text: str          # plain English for a manager


@dataclass(frozen=True)
class Conclusion:
    level: str
    measures: tuple[str, ...]      # sorted, unique
    decision: str
    needs_approval: bool
    reasons: tuple[Reason, ...]
    rule_version: str

    def reasons_for(self, conclusion: str) -> tuple[Reason, ...]:
        return tuple(r for r in self.reasons if r.conclusion == conclusion)


class RuleDataError(ValueError):
    """The rule data cannot be applied safely. `problems` holds (where in the data, what is wrong)."""

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]):
        self.source = source
        self.problems = list(problems)
        listed = "; ".join(f"{where}: {problem}" if where else problem for where, problem in self.problems)
        super().__init__(f"risk rules {source}: {listed}")


def _rank(order: tuple[str, ...], word: str) -> int:
    return order.index(word)


def factor_problems(factors: Sequence[Factor]) -> list[str]:
    """What is wrong with the factors as input, naming each by its position."""
    problems = []
    for i, f in enumerate(factors):
        if not isinstance(f, Factor):
            problems.append(f"factors[{i}] is not a factor")
            continue
        for name, value, allowed in (("kind", f.kind, FACTOR_KINDS), ("severity", f.severity, SEVERITIES),
                                     ("source", f.source, EVIDENCE_SOURCES)):
            if value not in allowed:
                problems.append(f"factors[{i}].{name}: {value!r} is not one of {', '.join(allowed)}")
        if not isinstance(f.notes, str):
            problems.append(f"factors[{i}].notes must be text")
    return problems


# -- the data, checked -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Effect:
    rule_id: str
    why: str
    level: str | None = None
    measures: tuple[str, ...] = ()
    decision: str | None = None
    sensitive: bool = False


@dataclass(frozen=True)
class _Combination:
    effect: _Effect
    kinds: tuple[str, ...]
    count_at_least: int
    severity_at_least: str


EFFECT_KEYS = {"level", "measures", "decision", "sensitive", "why"}
TOP_LEVEL_KEYS = {"version", "effective_from", "description", "how_to_read", "baseline", "factors", "offence_flags",
                  "unrecognised_offence_flag", "participant", "combinations", "levels", "decisions", "approval"}
REQUIRED_TOP_LEVEL = ("version", "description", "baseline", "factors", "approval")
PARTICIPANT_RULES = ("youth",)
# Floors the service's policy sets, whatever a rule file says: a high or very high level, and
# domestic abuse and sexual offences at any severity, always need a manager's approval.
APPROVAL_LEVELS_AT_LEAST = ("high", "very_high")
ALWAYS_SENSITIVE = ("domestic_abuse", "sexual_offence")


class _Checker:
    """Reads the rule data, collecting every problem rather than stopping at the first."""

    def __init__(self):
        self.problems: list[tuple[str, str]] = []

    def problem(self, where: str, text: str) -> None:
        self.problems.append((where, text))

    def obj(self, value: Any, where: str) -> dict:
        if not isinstance(value, dict):
            self.problem(where, "must be an object")
            return {}
        return value

    def keys(self, data: dict, where: str, allowed: set[str] | tuple[str, ...], what: str = "key") -> None:
        for key in data:
            if key not in allowed:
                self.problem(f"{where}.{key}" if where else key,
                             f"unknown {what} (expected one of {', '.join(sorted(allowed))})")

    def text(self, data: dict, key: str, where: str, required: bool = True) -> str:
        value = data.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            self.problem(f"{where}.{key}" if where else key, "is missing" if value is None else "must be non-empty text")
            return ""
        return value

    def word(self, data: dict, key: str, where: str, allowed: tuple[str, ...], required: bool) -> str | None:
        if key not in data:
            if required:
                self.problem(f"{where}.{key}", f"is missing (one of {', '.join(allowed)})")
            return None
        value = data[key]
        if value not in allowed:
            self.problem(f"{where}.{key}", f"{value!r} is not one of {', '.join(allowed)}")
            return None
        return value

    def words(self, data: dict, key: str, where: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list):
            self.problem(f"{where}.{key}", "must be a list")
            return ()
        good = []
        for item in value:
            if item not in allowed:
                self.problem(f"{where}.{key}", f"{item!r} is not one of {', '.join(allowed)}")
            elif item in good:
                self.problem(f"{where}.{key}", f"{item!r} is listed twice")
            else:
                good.append(item)
        return tuple(good)

    def effect(self, value: Any, where: str, *, extra_keys: set[str] = frozenset(), level_required: bool = False,
               level_allowed: bool = True, decision_allowed: bool = True, implied_decision: str | None = None
               ) -> _Effect:
        data = self.obj(value, where)
        allowed = (EFFECT_KEYS | extra_keys) - ({"level"} if not level_allowed else set()) \
            - ({"decision"} if not decision_allowed else set())
        self.keys(data, where, allowed)
        level = self.word(data, "level", where, LEVELS, level_required) if level_allowed else None
        measures = self.words(data, "measures", where, MEASURES)
        decision = self.word(data, "decision", where, DECISIONS, False) if decision_allowed else None
        sensitive = data.get("sensitive", False)
        if not isinstance(sensitive, bool):
            self.problem(f"{where}.sensitive", "must be true or false")
            sensitive = False
        why = self.text(data, "why", where)
        # A rule that asks for indirect contact only must not at the same time allow a direct meeting.
        strictest = decision or implied_decision or "direct_allowed"
        if "indirect_only" in measures and _rank(DECISIONS, strictest) < _rank(DECISIONS, "indirect_only"):
            self.problem(f"{where}.measures", "lists indirect_only but its decision allows a direct meeting "
                                              "(add \"decision\": \"indirect_only\")")
        return _Effect(where, why, level, measures, decision, sensitive)


def _monotone_problems(kind: str, table: dict[str, _Effect]) -> list[tuple[str, str]]:
    """A stronger severity must never ask for less than a weaker one: otherwise a source that
    reports a factor more strongly could make the assessment less cautious."""
    problems = []
    for weaker, stronger in zip(SEVERITIES, SEVERITIES[1:]):
        w, s = table.get(weaker), table.get(stronger)
        if w is None or s is None:
            continue
        where = f"factors.{kind}.{stronger}"
        if _rank(LEVELS, s.level or "low") < _rank(LEVELS, w.level or "low"):
            problems.append((where, f"level {s.level} is lower than {w.level} at {weaker}"))
        if _rank(DECISIONS, s.decision or "direct_allowed") < _rank(DECISIONS, w.decision or "direct_allowed"):
            problems.append((where, f"decision {s.decision or 'direct_allowed'} is less strict than "
                                    f"{w.decision} at {weaker}"))
        missing = [m for m in w.measures if m not in s.measures]
        if missing:
            problems.append((where, f"drops {', '.join(missing)}, which {weaker} requires"))
        if w.sensitive and not s.sensitive:
            problems.append((where, f"is not sensitive although {weaker} is"))
    return problems


# -- the rule set ------------------------------------------------------------------------------
class RuleSet:
    """One version of the rules, checked. Build it with load_rules() or RuleSet(data)."""

    def __init__(self, data: Mapping[str, Any], source: str = "<data>"):
        self.source = source
        check = _Checker()
        data = check.obj(data, "(the document)")
        check.keys(data, "", TOP_LEVEL_KEYS)
        for key in REQUIRED_TOP_LEVEL:
            if key not in data:
                check.problem(key, "is missing")
        version = data.get("version")
        if "version" in data and (not isinstance(version, str) or not version.strip()):
            check.problem("version", "must be non-empty text")
        elif isinstance(version, str) and len(version) > MAX_VERSION_LENGTH:
            check.problem("version", f"must be at most {MAX_VERSION_LENGTH} characters")
        self.version: str = version if isinstance(version, str) else ""
        self.description: str = check.text(data, "description", "", required="description" in data)
        self.effective_from: str = data.get("effective_from", "") if isinstance(data.get("effective_from"), str) else ""

        baseline = check.obj(data.get("baseline", {}), "baseline")
        check.keys(baseline, "baseline", {"level", "decision", "why"})
        self._baseline_level = check.word(baseline, "level", "baseline", LEVELS, "baseline" in data) or "low"
        self._baseline_decision = check.word(baseline, "decision", "baseline", DECISIONS, "baseline" in data) \
            or "direct_allowed"
        self._baseline_why = check.text(baseline, "why", "baseline", required="baseline" in data)

        self._factors: dict[str, dict[str, _Effect]] = {}
        factors = check.obj(data.get("factors", {}), "factors")
        check.keys(factors, "factors", FACTOR_KINDS, "factor kind")
        for kind in FACTOR_KINDS:
            if kind not in factors:
                if "factors" in data:
                    check.problem(f"factors.{kind}", "is missing: every factor kind needs a rule for each severity")
                continue
            table = check.obj(factors[kind], f"factors.{kind}")
            check.keys(table, f"factors.{kind}", SEVERITIES, "severity")
            effects = {}
            for severity in SEVERITIES:
                if severity not in table:
                    check.problem(f"factors.{kind}.{severity}", "is missing: each factor needs a rule for "
                                                                 f"{', '.join(SEVERITIES)}")
                    continue
                effects[severity] = check.effect(table[severity], f"factors.{kind}.{severity}", level_required=True)
            check.problems.extend(_monotone_problems(kind, effects))
            if kind in ALWAYS_SENSITIVE:
                check.problems.extend((f"factors.{kind}.{sev}.sensitive", "must be true: policy makes this factor "
                                                                          "sensitive at every severity")
                                      for sev, e in effects.items() if not e.sensitive)
            self._factors[kind] = effects

        flags = check.obj(data.get("offence_flags", {}), "offence_flags")
        self._flags = {flag: check.effect(rule, f"offence_flags.{flag}") for flag, rule in flags.items()}
        check.problems.extend((f"offence_flags.{flag}.sensitive", "must be true: policy makes this offence sensitive")
                              for flag in ALWAYS_SENSITIVE if flag in self._flags and not self._flags[flag].sensitive)
        self._unrecognised_flag = check.effect(
            data.get("unrecognised_offence_flag",
                     {"sensitive": True, "why": "These rules do not know this flag, so the case is treated as sensitive."}),
            "unrecognised_offence_flag")
        if "unrecognised_offence_flag" in data and not self._unrecognised_flag.sensitive:
            # An offence the rules have never heard of must at least reach a manager.
            check.problem("unrecognised_offence_flag.sensitive", "must be true")

        participant = check.obj(data.get("participant", {}), "participant")
        check.keys(participant, "participant", PARTICIPANT_RULES)
        self._participant = {key: check.effect(rule, f"participant.{key}") for key, rule in participant.items()
                             if key in PARTICIPANT_RULES}

        self._combinations: list[_Combination] = []
        combinations = check.obj(data.get("combinations", {}), "combinations")
        for name, rule in combinations.items():
            where = f"combinations.{name}"
            rule = check.obj(rule, where)
            effect = check.effect(rule, where, extra_keys={"kinds", "count_at_least", "severity_at_least"})
            kinds: tuple[str, ...] = FACTOR_KINDS
            if rule.get("kinds", "any") != "any":
                kinds = check.words(rule, "kinds", where, FACTOR_KINDS)
                if not kinds:
                    check.problem(f"{where}.kinds", "must be \"any\" or a list of factor kinds")
            count = rule.get("count_at_least")
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= max(len(kinds), 1):
                check.problem(f"{where}.count_at_least", f"must be a whole number from 1 to {len(kinds)}")
                count = 1
            severity = check.word(rule, "severity_at_least", where, SEVERITIES, True) or "low"
            if not (effect.level or effect.measures or effect.decision or effect.sensitive):
                check.problem(where, "does nothing: give it a level, measures, a decision or sensitive")
            self._combinations.append(_Combination(effect, kinds, count, severity))

        levels = check.obj(data.get("levels", {}), "levels")
        check.keys(levels, "levels", LEVELS, "level")
        # A level rule applies at its level and above; it cannot move the level itself.
        self._levels = {lvl: check.effect(rule, f"levels.{lvl}", level_allowed=False)
                        for lvl, rule in levels.items() if lvl in LEVELS}

        decisions = check.obj(data.get("decisions", {}), "decisions")
        check.keys(decisions, "decisions", DECISIONS, "decision")
        self._decisions = {d: check.effect(rule, f"decisions.{d}", level_allowed=False, decision_allowed=False,
                                           implied_decision=d)
                           for d, rule in decisions.items() if d in DECISIONS}
        # The plan of any meeting must be able to see that contact is to be indirect.
        if "indirect_only" not in self._decisions.get("indirect_only", _Effect("", "")).measures:
            check.problem("decisions.indirect_only.measures", "must list indirect_only (policy: a decision of "
                                                              "indirect only or stricter carries that measure)")

        approval = check.obj(data.get("approval", {}), "approval")
        check.keys(approval, "approval", {"levels", "why_level", "why_sensitive", "why_not_required"})
        self._approval_levels = check.words(approval, "levels", "approval", LEVELS)
        lowest = min([_rank(LEVELS, lvl) for lvl in self._approval_levels + APPROVAL_LEVELS_AT_LEAST])
        if set(self._approval_levels) != set(LEVELS[lowest:]):
            # Otherwise a higher level could need less approval than a lower one.
            check.problem("approval.levels", f"must list every level from {LEVELS[lowest]} up "
                                             f"(policy: {' and '.join(APPROVAL_LEVELS_AT_LEAST)} always need approval)")
        required = "approval" in data
        self._why_level = check.text(approval, "why_level", "approval", required)
        self._why_sensitive = check.text(approval, "why_sensitive", "approval", required)
        self._why_not_required = check.text(approval, "why_not_required", "approval", required)

        if check.problems:
            raise RuleDataError(source, check.problems)
        self._data = copy.deepcopy(dict(data))

    def __repr__(self) -> str:
        return f"RuleSet({self.version!r}, source={self.source!r})"

    def to_dict(self) -> dict:
        """The whole rule data, as written, for a manager to read."""
        return copy.deepcopy(self._data)

    def rule_ids(self) -> list[str]:
        """Every rule id a reason can name."""
        ids = ["baseline"]
        ids += [f"factors.{k}.{s}" for k in FACTOR_KINDS for s in SEVERITIES]
        ids += [f"offence_flags.{f}" for f in self._flags] + ["unrecognised_offence_flag"]
        ids += [e.rule_id for e in self._participant.values()] + [c.effect.rule_id for c in self._combinations]
        ids += [e.rule_id for e in self._levels.values()] + [e.rule_id for e in self._decisions.values()]
        return ids + ["approval", "approval.levels"]

    # -- applying the rules --------------------------------------------------------------------
    def evaluate(self, factors: Sequence[Factor], *, offence_flags: Sequence[str] = (),
                 participant_role: str = "victim", is_youth: bool = False) -> Conclusion:
        """The conclusion for one participant. Raises ValueError naming each bad input.

        When several sources report the same factor, the strongest severity counts (the sources
        that reported it are named in the reasons). Combinations count different factors, so the
        same factor reported twice is one factor."""
        factors = tuple(factors)
        problems = factor_problems(factors)
        if participant_role not in PARTICIPANT_ROLES:
            problems.append(f"participant_role: {participant_role!r} is not one of {', '.join(PARTICIPANT_ROLES)}")
        if isinstance(offence_flags, str) or not all(isinstance(f, str) and f for f in offence_flags):
            problems.append("offence_flags must be a list of non-empty words")
        if problems:
            raise ValueError("; ".join(problems))

        strongest: dict[str, str] = {}
        for f in factors:
            if f.kind not in strongest or _rank(SEVERITIES, f.severity) > _rank(SEVERITIES, strongest[f.kind]):
                strongest[f.kind] = f.severity
        fired: list[tuple[_Effect, str]] = []      # (rule, what made it apply, in words)
        for kind in FACTOR_KINDS:
            if kind in strongest:
                severity = strongest[kind]
                reported = {f.source for f in factors if f.kind == kind and f.severity == severity}
                sources = [SOURCE_LABELS[s] for s in EVIDENCE_SOURCES if s in reported]
                fired.append((self._factors[kind][severity],
                              f"{FACTOR_LABELS[kind]}: {severity} (evidence: {', '.join(sources)})"))
        for flag in sorted(set(offence_flags)):
            label = OFFENCE_FLAG_LABELS.get(flag, repr(flag))
            fired.append((self._flags.get(flag, self._unrecognised_flag), f"The offence is flagged as {label}"))
        if is_youth and "youth" in self._participant:
            fired.append((self._participant["youth"], "The participant is under 18"))
        for combo in self._combinations:
            matched = [k for k in combo.kinds if k in strongest
                       and _rank(SEVERITIES, strongest[k]) >= _rank(SEVERITIES, combo.severity_at_least)]
            if len(matched) >= combo.count_at_least:
                fired.append((combo.effect, f"{len(matched)} factors at {combo.severity_at_least} or above "
                                            f"({'; '.join(FACTOR_LABELS[k] for k in matched)})"))

        level = max([self._baseline_level] + [e.level for e, _ in fired if e.level], key=LEVELS.index)
        for lvl in LEVELS:
            if lvl in self._levels and _rank(LEVELS, level) >= _rank(LEVELS, lvl):
                fired.append((self._levels[lvl], f"The level is {LEVEL_LABELS[level]}"))
        decision = max([self._baseline_decision] + [e.decision for e, _ in fired if e.decision], key=DECISIONS.index)
        for d in DECISIONS:
            if d in self._decisions and _rank(DECISIONS, decision) >= _rank(DECISIONS, d):
                fired.append((self._decisions[d], f"The decision is {DECISION_LABELS[decision]}"))
        measures = tuple(sorted({m for e, _ in fired for m in e.measures}))
        sensitive = [(e, cause) for e, cause in fired if e.sensitive]
        level_needs_approval = level in self._approval_levels
        needs_approval = bool(sensitive) or level_needs_approval

        reasons: list[Reason] = []
        nothing = "No risk factors were recorded" if not factors else None
        level_rules = [(e, cause) for e, cause in fired if e.level == level]
        reasons += [Reason(f"level:{level}", e.rule_id, f"{cause}. {e.why}") for e, cause in level_rules]
        if not level_rules:
            reasons.append(Reason(f"level:{level}", "baseline",
                                  f"{nothing or 'No recorded factor raises the level'}. {self._baseline_why}"))
        for m in measures:
            reasons += [Reason(f"measure:{m}", e.rule_id, f"{cause}. {e.why}") for e, cause in fired if m in e.measures]
        decision_rules = [(e, cause) for e, cause in fired if e.decision == decision]
        reasons += [Reason(f"decision:{decision}", e.rule_id, f"{cause}. {e.why}") for e, cause in decision_rules]
        if not decision_rules:
            reasons.append(Reason(f"decision:{decision}", "baseline",
                                  f"{nothing or 'No recorded factor rules out a direct meeting'}. {self._baseline_why}"))
        reasons += [Reason("approval:required", e.rule_id,
                           f"{cause}. {e.why if e is self._unrecognised_flag else self._why_sensitive}")
                    for e, cause in sensitive]
        if level_needs_approval:
            reasons.append(Reason("approval:required", "approval.levels",
                                  f"The level is {LEVEL_LABELS[level]}. {self._why_level}"))
        if not needs_approval:
            reasons.append(Reason("approval:not_required", "approval",
                                  f"{nothing or 'The level is ' + LEVEL_LABELS[level]}. "
                                  f"{self._why_not_required}"))
        return Conclusion(level, measures, decision, needs_approval, tuple(reasons), self.version)


# -- loading -----------------------------------------------------------------------------------
def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


class _DuplicateKey(Exception):
    pass


def load_rules(path: Path | None = None) -> RuleSet:
    """Read and check a rule file (the shipped risk-rules-v1.json by default)."""
    path = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise RuleDataError(str(path), [("", f"cannot be read ({e.strerror or e})")]) from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as e:
        raise RuleDataError(str(path), [("", f"is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}")]) \
            from None
    except _DuplicateKey as e:
        # JSON would silently keep the last of two rules with the same name.
        raise RuleDataError(str(path), [(str(e.args[0]), "appears twice in the same object")]) from None
    return RuleSet(data, source=str(path))


@functools.lru_cache(maxsize=1)
def current_rules() -> RuleSet:
    """The shipped rules, loaded and checked once."""
    return load_rules()
