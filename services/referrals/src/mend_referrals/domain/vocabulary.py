"""The words a referral may use. Entrypoints map proto enums and JSON strings onto these."""

OFFENCE_CATEGORIES = (
    "violence_against_the_person", "sexual_offence", "robbery", "theft", "burglary", "criminal_damage",
    "public_order", "stalking_and_harassment", "fraud", "drugs", "vehicle", "anti_social_behaviour",
    "neighbour_dispute", "other",
)
INITIATORS = ("victim_led", "offender_led")
PARTICIPANT_ROLES = ("victim", "responsible_person", "supporter", "parent_or_guardian")
VULNERABILITIES = (
    "mental_health", "learning_disability", "physical_disability", "substance_misuse", "intimidated",
    "persistently_targeted", "bereaved_by_crime", "language_needs", "other",
)
CONTACT_CHANNELS = ("email", "phone", "sms", "letter", "via_referrer")
OFFENCE_FLAGS = ("domestic_abuse", "sexual_offence", "hate_crime", "serious_violence")
# Words of the cases service's events that a referral's status follows.
ELIGIBILITY_DECISIONS = ("accepted", "rejected")
CASE_CLOSURE_REASONS = ("completed", "declined", "unsuitable", "withdrawn", "unable_to_contact", "terminated")
AGENCY_KINDS = ("police", "probation", "prison", "youth_offending_team", "victim_support", "court", "housing",
                "self_referral", "other")

# Victims' Code: these victims are entitled to enhanced rights (faster information about RJ).
ENHANCED_RIGHTS_VULNERABILITIES = ("intimidated", "persistently_targeted", "bereaved_by_crime", "mental_health",
                                   "learning_disability", "physical_disability")


class ReferralStatus:
    RECEIVED = "received"
    CASE_OPENED = "case_opened"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CLOSED = "closed"
    ALL = (RECEIVED, CASE_OPENED, ACCEPTED, REJECTED, CLOSED)
