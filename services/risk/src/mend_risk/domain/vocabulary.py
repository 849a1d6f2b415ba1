"""The words of the risk domain. Entrypoints map proto enums and JSON strings onto these; the
rule data (rules/risk-rules-v1.json) may use only these."""

# What an assessor can record about a participant. Each present factor has a severity and an
# evidence source; the rule data says what each (factor, severity) means for the meeting.
FACTOR_KINDS = (
    "physical_harm_to_participant", "physical_harm_from_participant", "emotional_harm",
    "vulnerability_age", "vulnerability_mental_health", "vulnerability_learning_disability",
    "vulnerability_substance_misuse", "safeguarding_child", "safeguarding_adult",
    "domestic_abuse", "sexual_offence", "hate_crime", "stalking_or_harassment", "serious_violence",
    "power_imbalance", "low_acknowledgement", "low_remorse", "low_motivation",
    "protective_order", "licence_or_bail_conditions", "prison_conditions", "prison_security",
)
SEVERITIES = ("low", "medium", "high")          # how strongly a present factor applies; ordered
EVIDENCE_SOURCES = ("police", "probation", "prison", "yot", "victim_support", "self_report")
LEVELS = ("low", "medium", "high", "very_high")   # ordered
MEASURES = ("co_facilitation", "separate_arrival_and_waiting", "supporter_present", "prison_venue", "indirect_only",
            "specialist_facilitator")
DECISIONS = ("direct_allowed", "indirect_only", "not_suitable")   # least to most restrictive
MEETING_KINDS = ("preparation_visit", "pre_prison_visit", "conference", "indirect_session", "supervision")
DIRECT_MEETING_KINDS = ("conference",)
STATUSES = ("awaiting_approval", "approved", "rejected", "expired", "superseded")
# Statuses in which an assessment still stands (the others are history).
LIVE_STATUSES = ("awaiting_approval", "approved")

# The cases service's words, as they arrive in its events (risk never imports that service).
PARTICIPANT_ROLES = ("victim", "responsible_person", "supporter", "parent_or_guardian")
CASE_STAGES = (
    "referral_received", "eligibility", "contact_and_information", "consent", "risk_and_safety", "preparation",
    "intervention", "outcome_agreement", "follow_up",
)

# How the issue groups the factors, for forms and for a manager reading the rules.
FACTOR_GROUPS = {
    "physical_harm": ("physical_harm_to_participant", "physical_harm_from_participant"),
    "emotional_harm": ("emotional_harm",),
    "vulnerability": ("vulnerability_age", "vulnerability_mental_health", "vulnerability_learning_disability",
                      "vulnerability_substance_misuse"),
    "safeguarding": ("safeguarding_child", "safeguarding_adult"),
    "offence_type": ("domestic_abuse", "sexual_offence", "hate_crime", "stalking_or_harassment", "serious_violence"),
    "power_imbalance": ("power_imbalance",),
    "attitude_of_responsible_person": ("low_acknowledgement", "low_remorse", "low_motivation"),
    "restrictions": ("protective_order", "licence_or_bail_conditions", "prison_conditions"),
    "prison_security": ("prison_security",),
}

FACTOR_LABELS = {
    "physical_harm_to_participant": "Risk of physical harm to the participant",
    "physical_harm_from_participant": "Risk of physical harm from the participant",
    "emotional_harm": "Risk of emotional harm or re-traumatisation",
    "vulnerability_age": "Vulnerability through age",
    "vulnerability_mental_health": "Vulnerability through mental health",
    "vulnerability_learning_disability": "Vulnerability through a learning disability",
    "vulnerability_substance_misuse": "Vulnerability through substance misuse",
    "safeguarding_child": "Safeguarding concern for a child",
    "safeguarding_adult": "Safeguarding concern for an adult at risk",
    "domestic_abuse": "Domestic abuse",
    "sexual_offence": "Sexual offence",
    "hate_crime": "Hate crime",
    "stalking_or_harassment": "Stalking or harassment",
    "serious_violence": "Serious violence",
    "power_imbalance": "Power imbalance or intimidation",
    "low_acknowledgement": "Responsible person's acknowledgement of the harm is low",
    "low_remorse": "Responsible person's remorse is low",
    "low_motivation": "Responsible person's motivation is low",
    "protective_order": "Restraining, non-molestation or no-contact order",
    "licence_or_bail_conditions": "Licence or bail conditions",
    "prison_conditions": "Prison conditions",
    "prison_security": "Prison security constraints",
}
SEVERITY_LABELS = {"low": "low", "medium": "medium", "high": "high"}
SOURCE_LABELS = {"police": "police", "probation": "probation", "prison": "prison", "yot": "youth offending team",
                 "victim_support": "Victim Support", "self_report": "self-report"}
LEVEL_LABELS = {"low": "low", "medium": "medium", "high": "high", "very_high": "very high"}
MEASURE_LABELS = {
    "co_facilitation": "co-facilitation",
    "separate_arrival_and_waiting": "separate arrival and waiting rooms",
    "supporter_present": "supporter present",
    "prison_venue": "prison venue",
    "indirect_only": "indirect contact only",
    "specialist_facilitator": "specialist facilitator",
}
DECISION_LABELS = {"direct_allowed": "direct meeting allowed", "indirect_only": "indirect only",
                   "not_suitable": "not suitable"}
# Offence flags the cases service puts on a case; any other flag is treated as sensitive.
OFFENCE_FLAG_LABELS = {
    "domestic_abuse": "domestic abuse", "sexual_offence": "a sexual offence", "hate_crime": "a hate crime",
    "serious_violence": "serious violence", "stalking_or_harassment": "stalking or harassment",
    "most_serious": "one of the most serious crimes",
}

assert set(FACTOR_LABELS) == set(FACTOR_KINDS), "every factor kind has a label"
assert sorted(k for kinds in FACTOR_GROUPS.values() for k in kinds) == sorted(FACTOR_KINDS), "each kind in one group"
assert set(MEASURE_LABELS) == set(MEASURES) and set(DECISION_LABELS) == set(DECISIONS)
assert set(LEVEL_LABELS) == set(LEVELS) and set(SOURCE_LABELS) == set(EVIDENCE_SOURCES)
