"""The templates a new deployment starts with (version 1): every message type by every channel
it goes by, in English and Welsh. Staff replace them through the template API; these stay as
the fallback and as the worked examples of what a template may do.

The Welsh is plain and meant to be kind and correct, but it was not written by a Welsh speaker:
it must be reviewed by one (ideally the county's Welsh language officer) before production.
Dates and times arrive formatted ("Dydd Mawrth 16 Mehefin 2026 am 10:00"), so no template puts a
mutating preposition such as "ar" in front of one, nor "gan" in front of the service's name.
Subjects avoid "wedi'i" before a meeting kind: its mutation depends on the noun's gender
(cyfarfod, sesiwn). Welsh text messages are kept short because a circumflex (â, ŵ, ŷ) makes a
text message UCS-2, 67 characters a part.

Each wording is careful about the parties: a meeting message names the other party only when
a coordinator released that name to the recipient (other_party_name is then defined), and no
message says why a meeting was cancelled.
"""
from __future__ import annotations

from .templates import Template
from .vocabulary import TEMPLATE_CHANNELS

# -- English ------------------------------------------------------------------------------------
_EN_CONTACT = "please contact us on {{ service_phone }} or at {{ service_email }}"
_EN_SIGN = "\n\nKind regards,\n{{ service_name }}\n"
_EN_MEETING = """When: {{ starts_at_local }} until {{ ends_at_local }}
Where: {{ venue_name }}, {{ venue_address }}
Facilitators: {{ facilitator_names }}
{% if other_party_name is defined %}
Also taking part: {{ other_party_name }}
{% endif %}
{% if arrival_note is defined %}

{{ arrival_note }}
{% endif %}
"""
_EN_CANNOT_COME = ("If you cannot come, or you need anything to help you take part, " + _EN_CONTACT
                   + " as soon as possible.")


def _en_meeting_letter(opening: str, details: bool = True, closing: str = _EN_CANNOT_COME) -> str:
    return ("Dear {{ recipient_name }},\n\n" + opening + "\n\n" + (_EN_MEETING + "\n" if details else "")
            + closing + "\n\nReference: {{ case_reference }}" + _EN_SIGN)


_EN_CONSENT = """Dear {{ recipient_name }},

Thank you for talking with us about restorative justice. Taking part is always your choice. Before we go any further, we need to know whether you would like to take part.

Please let {{ coordinator_name }} know by {{ reply_by }}. You can call us on {{ service_phone }} or email {{ service_email }}. You can ask us questions first, and you can change your mind at any time.

Please quote reference {{ case_reference }}.

Kind regards,
{{ coordinator_name }}
{{ service_name }}
"""

EN = {
    ("referral_status", "email"): (
        "Referral {{ agency_reference }}: {{ status }}",
        """Dear {{ recipient_name }},

The status of your referral {{ agency_reference }} to {{ service_name }} is now: {{ status }}.

{{ detail }}

Updated on {{ updated_on }}.

If you have any questions, """ + _EN_CONTACT + "." + _EN_SIGN),
    ("case_accepted", "email"): (
        "Referral {{ agency_reference }} accepted for restorative justice",
        """Dear {{ recipient_name }},

Thank you for your referral {{ agency_reference }}. On {{ decided_on }} we accepted it for restorative justice. Our case reference is {{ case_reference }}: please quote it when you contact us.

We will keep you informed of progress. If you have any questions, """ + _EN_CONTACT + "." + _EN_SIGN),
    ("case_rejected", "email"): (
        "Referral {{ agency_reference }} not accepted",
        """Dear {{ recipient_name }},

Thank you for your referral {{ agency_reference }}. On {{ decided_on }} we decided that we cannot offer restorative justice in this case.

Reason: {{ reason }}

If you would like to talk about this decision, or about other support for the people involved, """ + _EN_CONTACT
        + "." + _EN_SIGN),
    ("consent_requested", "email"): ("Taking part in restorative justice: your choice", _EN_CONSENT),
    ("consent_requested", "letter"): ("Taking part in restorative justice: your choice", _EN_CONSENT),
    ("consent_requested", "sms"): (
        "",
        "{{ service_name }}: please tell us by {{ reply_by }} if you would like to take part in restorative "
        "justice. It is your choice. Call {{ service_phone }}. Ref {{ case_reference }}"),
    ("meeting_scheduled", "email"): (
        "Your {{ meeting_kind }}: {{ starts_at_local }}",
        _en_meeting_letter("We have arranged your {{ meeting_kind }}. A calendar invitation is attached.")),
    ("meeting_scheduled", "letter"): (
        "Your {{ meeting_kind }}",
        _en_meeting_letter("We have arranged your {{ meeting_kind }}.")),
    ("meeting_scheduled", "sms"): (
        "",
        "{{ service_name }}: we have arranged your {{ meeting_kind }}: {{ starts_at_local }}, {{ venue_name }}. "
        "Cannot come? Call {{ service_phone }}."),
    ("meeting_rescheduled", "email"): (
        "New time for your {{ meeting_kind }}: {{ starts_at_local }}",
        _en_meeting_letter("We have changed the time of your {{ meeting_kind }}, which was going to be "
                           "{{ previous_starts_at_local }}. The new details are below, and an updated calendar "
                           "invitation is attached.")),
    ("meeting_rescheduled", "letter"): (
        "New time for your {{ meeting_kind }}",
        _en_meeting_letter("We have changed the time of your {{ meeting_kind }}, which was going to be "
                           "{{ previous_starts_at_local }}. The new details are below.")),
    ("meeting_rescheduled", "sms"): (
        "",
        "{{ service_name }}: your {{ meeting_kind }} has moved to {{ starts_at_local }}, {{ venue_name }}. "
        "Cannot come? Call {{ service_phone }}."),
    ("meeting_cancelled", "email"): (
        "Cancelled: your {{ meeting_kind }}, {{ starts_at_local }}",
        _en_meeting_letter("We are sorry, but we have had to cancel your {{ meeting_kind }} ({{ starts_at_local }}, "
                           "{{ venue_name }}). The attached update removes it from your calendar.", details=False,
                           closing="We will be in touch about what happens next. If you have any questions, "
                           + _EN_CONTACT + ".")),
    ("meeting_cancelled", "letter"): (
        "Your {{ meeting_kind }} is cancelled",
        _en_meeting_letter("We are sorry, but we have had to cancel your {{ meeting_kind }} ({{ starts_at_local }}, "
                           "{{ venue_name }}).", details=False,
                           closing="We will be in touch about what happens next. If you have any questions, "
                           + _EN_CONTACT + ".")),
    ("meeting_cancelled", "sms"): (
        "",
        "{{ service_name }}: we are sorry, your {{ meeting_kind }} ({{ starts_at_local }}) is cancelled. "
        "We will be in touch. Questions? Call {{ service_phone }}."),
    ("meeting_reminder", "email"): (
        "Reminder: your {{ meeting_kind }}, {{ starts_at_local }}",
        _en_meeting_letter("This is a reminder about your {{ meeting_kind }}.")),
    ("meeting_reminder", "letter"): (
        "Reminder: your {{ meeting_kind }}",
        _en_meeting_letter("This is a reminder about your {{ meeting_kind }}.")),
    ("meeting_reminder", "sms"): (
        "",
        "{{ service_name }} reminder: your {{ meeting_kind }} is on {{ starts_at_local }}, {{ venue_name }}. "
        "Cannot come? Call {{ service_phone }}."),
    ("outcome_item_overdue", "email"): (
        "Overdue outcome agreement item: {{ case_reference }}",
        """Dear {{ recipient_name }},

An item in the outcome agreement for case {{ case_reference }} ({{ county }}) is overdue.

Item: {{ item_kind }}
Due on: {{ due_on }} ({{ days_overdue }} day{% if days_overdue != 1 %}s{% endif %} ago)

Please check with the people involved and update the case in Mend.

{{ service_name }}
"""),
    ("victims_code_breach", "email"): (
        "Victims' Code deadline missed: {{ case_reference }}",
        """Dear {{ recipient_name }},

{% if met_late %}
A Victims' Code deadline for case {{ case_reference }} ({{ county }}) was met late.
{% else %}
A Victims' Code deadline for case {{ case_reference }} ({{ county }}) has passed and has not been met.
{% endif %}

Entitlement: {{ clock }}
Clock started: {{ started_on }}
Due by: {{ due_on }}

{% if met_late %}
Please record the reason for the delay on the case.
{% else %}
Please act on this today and record what was done on the case.
{% endif %}

{{ service_name }}
"""),
    ("risk_approval_requested", "email"): (
        "Risk assessment awaiting your approval: {{ case_reference }}",
        """Dear {{ recipient_name }},

A risk assessment for case {{ case_reference }} ({{ county }}) is waiting for a manager's approval.

Risk level: {{ level }}
Assessed by: {{ assessor_name }}
Requested: {{ requested_at_local }}

No direct meeting can go ahead until it is approved. Please review it in Mend.

{{ service_name }}
"""),
}

# -- Cymraeg (to be reviewed by a Welsh speaker before production) -----------------------------------
_CY_CONTACT = "cysylltwch â ni ar {{ service_phone }} neu drwy e-bost at {{ service_email }}"
_CY_SIGN = "\n\nCofion cynnes,\n{{ service_name }}\n"
_CY_MEETING = """Pryd: {{ starts_at_local }} tan {{ ends_at_local }}
Ble: {{ venue_name }}, {{ venue_address }}
Hwyluswyr: {{ facilitator_names }}
{% if other_party_name is defined %}
Hefyd yn cymryd rhan: {{ other_party_name }}
{% endif %}
{% if arrival_note is defined %}

{{ arrival_note }}
{% endif %}
"""
_CY_CANNOT_COME = ("Os na allwch ddod, neu os oes angen unrhyw beth arnoch i'ch helpu i gymryd rhan, "
                   + _CY_CONTACT + " cyn gynted â phosibl.")


def _cy_meeting_letter(opening: str, details: bool = True, closing: str = _CY_CANNOT_COME) -> str:
    return ("Annwyl {{ recipient_name }},\n\n" + opening + "\n\n" + (_CY_MEETING + "\n" if details else "")
            + closing + "\n\nCyfeirnod: {{ case_reference }}" + _CY_SIGN)


_CY_CONSENT = """Annwyl {{ recipient_name }},

Diolch am siarad â ni am gyfiawnder adferol. Eich dewis chi yw cymryd rhan, bob amser. Cyn i ni fynd ymhellach, mae angen i ni wybod a hoffech gymryd rhan.

Rhowch wybod i {{ coordinator_name }} erbyn {{ reply_by }}. Gallwch ein ffonio ar {{ service_phone }} neu anfon e-bost at {{ service_email }}. Gallwch ofyn cwestiynau i ni yn gyntaf, a gallwch newid eich meddwl unrhyw bryd.

Nodwch y cyfeirnod {{ case_reference }}.

Cofion cynnes,
{{ coordinator_name }}
{{ service_name }}
"""
_CY_CANCELLED_CLOSING = "Byddwn yn cysylltu â chi am beth fydd yn digwydd nesaf. Os oes gennych unrhyw gwestiynau, " + _CY_CONTACT + "."

CY = {
    ("referral_status", "email"): (
        "Atgyfeiriad {{ agency_reference }}: {{ status }}",
        """Annwyl {{ recipient_name }},

Statws eich atgyfeiriad {{ agency_reference }} at {{ service_name }} yw: {{ status }}.

{{ detail }}

Diweddarwyd: {{ updated_on }}.

Os oes gennych unrhyw gwestiynau, """ + _CY_CONTACT + "." + _CY_SIGN),
    ("case_accepted", "email"): (
        "Atgyfeiriad {{ agency_reference }} wedi'i dderbyn ar gyfer cyfiawnder adferol",
        """Annwyl {{ recipient_name }},

Diolch am eich atgyfeiriad {{ agency_reference }}. Fe wnaethom ei dderbyn ar gyfer cyfiawnder adferol (dyddiad y penderfyniad: {{ decided_on }}). Cyfeirnod ein hachos yw {{ case_reference }}: nodwch y cyfeirnod hwn pan fyddwch yn cysylltu â ni.

Byddwn yn rhoi gwybod i chi sut mae pethau'n datblygu. Os oes gennych unrhyw gwestiynau, """ + _CY_CONTACT + "." + _CY_SIGN),
    ("case_rejected", "email"): (
        "Atgyfeiriad {{ agency_reference }} heb ei dderbyn",
        """Annwyl {{ recipient_name }},

Diolch am eich atgyfeiriad {{ agency_reference }}. Rydym wedi penderfynu na allwn gynnig cyfiawnder adferol yn yr achos hwn (dyddiad y penderfyniad: {{ decided_on }}).

Rheswm: {{ reason }}

Os hoffech drafod y penderfyniad hwn, neu gymorth arall i'r bobl dan sylw, """ + _CY_CONTACT + "." + _CY_SIGN),
    ("consent_requested", "email"): ("Cymryd rhan mewn cyfiawnder adferol: eich dewis chi", _CY_CONSENT),
    ("consent_requested", "letter"): ("Cymryd rhan mewn cyfiawnder adferol: eich dewis chi", _CY_CONSENT),
    ("consent_requested", "sms"): (
        "",
        "{{ service_name }}: rhowch wybod erbyn {{ reply_by }} a hoffech gymryd rhan mewn cyfiawnder adferol. "
        "Eich dewis chi yw hyn. Ffoniwch {{ service_phone }}. Cyf: {{ case_reference }}"),
    ("meeting_scheduled", "email"): (
        "Eich {{ meeting_kind }}: {{ starts_at_local }}",
        _cy_meeting_letter("Rydym wedi trefnu eich {{ meeting_kind }}. Mae gwahoddiad calendr wedi'i atodi.")),
    ("meeting_scheduled", "letter"): (
        "Eich {{ meeting_kind }}",
        _cy_meeting_letter("Rydym wedi trefnu eich {{ meeting_kind }}.")),
    ("meeting_scheduled", "sms"): (
        "",
        "{{ service_name }}: rydym wedi trefnu eich {{ meeting_kind }}: {{ starts_at_local }}, {{ venue_name }}. "
        "Methu dod? Ffoniwch {{ service_phone }}."),
    ("meeting_rescheduled", "email"): (
        "Amser newydd i'ch {{ meeting_kind }}: {{ starts_at_local }}",
        _cy_meeting_letter("Rydym wedi newid amser eich {{ meeting_kind }}. Yr hen amser oedd "
                           "{{ previous_starts_at_local }}. Mae'r manylion newydd isod, ac mae gwahoddiad calendr "
                           "newydd wedi'i atodi.")),
    ("meeting_rescheduled", "letter"): (
        "Amser newydd i'ch {{ meeting_kind }}",
        _cy_meeting_letter("Rydym wedi newid amser eich {{ meeting_kind }}. Yr hen amser oedd "
                           "{{ previous_starts_at_local }}. Mae'r manylion newydd isod.")),
    ("meeting_rescheduled", "sms"): (
        "",
        "{{ service_name }}: amser newydd eich {{ meeting_kind }}: {{ starts_at_local }}, {{ venue_name }}. "
        "Methu dod? Ffoniwch {{ service_phone }}."),
    ("meeting_cancelled", "email"): (
        "Canslwyd: eich {{ meeting_kind }}, {{ starts_at_local }}",
        _cy_meeting_letter("Mae'n ddrwg gennym, ond rydym wedi gorfod canslo eich {{ meeting_kind }} "
                           "({{ starts_at_local }}, {{ venue_name }}). Mae'r diweddariad sydd wedi'i atodi yn ei "
                           "dynnu o'ch calendr.", details=False, closing=_CY_CANCELLED_CLOSING)),
    ("meeting_cancelled", "letter"): (
        "Rydym wedi canslo eich {{ meeting_kind }}",
        _cy_meeting_letter("Mae'n ddrwg gennym, ond rydym wedi gorfod canslo eich {{ meeting_kind }} "
                           "({{ starts_at_local }}, {{ venue_name }}).", details=False,
                           closing=_CY_CANCELLED_CLOSING)),
    ("meeting_cancelled", "sms"): (
        "",
        "{{ service_name }}: mae'n ddrwg gennym, rydym wedi canslo eich {{ meeting_kind }} ({{ starts_at_local }}). "
        "Byddwn yn cysylltu. Ffoniwch {{ service_phone }}."),
    ("meeting_reminder", "email"): (
        "Nodyn atgoffa: eich {{ meeting_kind }}, {{ starts_at_local }}",
        _cy_meeting_letter("Dyma nodyn i'ch atgoffa am eich {{ meeting_kind }}.")),
    ("meeting_reminder", "letter"): (
        "Nodyn atgoffa: eich {{ meeting_kind }}",
        _cy_meeting_letter("Dyma nodyn i'ch atgoffa am eich {{ meeting_kind }}.")),
    ("meeting_reminder", "sms"): (
        "",
        "{{ service_name }}: nodyn atgoffa am eich {{ meeting_kind }}, {{ starts_at_local }}, {{ venue_name }}. "
        "Methu dod? Ffoniwch {{ service_phone }}."),
    ("outcome_item_overdue", "email"): (
        "Eitem cytundeb canlyniadau yn hwyr: {{ case_reference }}",
        """Annwyl {{ recipient_name }},

Mae eitem yn y cytundeb canlyniadau ar gyfer achos {{ case_reference }} ({{ county }}) yn hwyr.

Eitem: {{ item_kind }}
Dyddiad dyledus: {{ due_on }} ({{ days_overdue }} diwrnod yn ôl)

Holwch y bobl dan sylw a diweddarwch yr achos yn Mend.

{{ service_name }}
"""),
    ("victims_code_breach", "email"): (
        "Terfyn amser Cod y Dioddefwyr wedi'i fethu: {{ case_reference }}",
        """Annwyl {{ recipient_name }},

{% if met_late %}
Cafodd terfyn amser o dan God y Dioddefwyr ar gyfer achos {{ case_reference }} ({{ county }}) ei fodloni'n hwyr.
{% else %}
Mae terfyn amser o dan God y Dioddefwyr ar gyfer achos {{ case_reference }} ({{ county }}) wedi mynd heibio heb ei fodloni.
{% endif %}

Hawl: {{ clock }}
Dechreuodd y cloc: {{ started_on }}
Dyddiad dyledus: {{ due_on }}

{% if met_late %}
Cofnodwch y rheswm dros yr oedi ar yr achos.
{% else %}
Gweithredwch ar hyn heddiw a chofnodwch beth a wnaed ar yr achos.
{% endif %}

{{ service_name }}
"""),
    ("risk_approval_requested", "email"): (
        "Asesiad risg yn aros am eich cymeradwyaeth: {{ case_reference }}",
        """Annwyl {{ recipient_name }},

Mae asesiad risg ar gyfer achos {{ case_reference }} ({{ county }}) yn aros am gymeradwyaeth rheolwr.

Lefel risg: {{ level }}
Aseswyd gan: {{ assessor_name }}
Gofynnwyd: {{ requested_at_local }}

Ni all unrhyw gyfarfod uniongyrchol fynd yn ei flaen nes iddo gael ei gymeradwyo. Adolygwch ef yn Mend.

{{ service_name }}
"""),
}

DEFAULT_TEMPLATES: dict[tuple[str, str, str], Template] = {
    (message_type, channel, language): Template(message_type, channel, language, 1, subject, body)
    for language, texts in (("en", EN), ("cy", CY))
    for (message_type, channel), (subject, body) in texts.items()
}


def default_template(message_type: str, channel: str, language: str) -> Template | None:
    """The shipped template; a Welsh one falls back to English only if none exists (none should)."""
    return (DEFAULT_TEMPLATES.get((message_type, channel, language))
            or DEFAULT_TEMPLATES.get((message_type, channel, "en")))


assert set(EN) == set(CY) == {(t, c) for t, cs in TEMPLATE_CHANNELS.items() for c in cs}, \
    "a default template for every message type and text channel, in both languages"
