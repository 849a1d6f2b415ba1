"""The Senders port over the real channels: one SMTP relay, one SMS and letter provider, and
referrers' webhook endpoints. Configured from the environment (see bootstrap)."""
from __future__ import annotations

from .channels import PermanentFailure, ProviderClient, SmtpSender, WebhookSender


class ChannelSenders:
    def __init__(self, smtp: SmtpSender, provider: ProviderClient | None, webhooks: WebhookSender):
        self.smtp, self.provider, self.webhooks = smtp, provider, webhooks

    def email(self, *, message_id, to, subject, body, attachments):
        return self.smtp.send(message_id=message_id, to=to, subject=subject, body=body, attachments=attachments)

    def _provider(self) -> ProviderClient:
        if self.provider is None:
            raise PermanentFailure("no SMS and letter provider is configured (MEND_PROVIDER_URL)")
        return self.provider

    def sms(self, *, message_id, to, body):
        return self._provider().send_sms(message_id=message_id, to=to, body=body)

    def letter(self, *, message_id, address_lines, postcode, pdf):
        return self._provider().send_letter(message_id=message_id, address_lines=address_lines, postcode=postcode,
                                            pdf=pdf)

    def webhook(self, *, url, secret, message_id, body):
        return str(self.webhooks.post(url, secret=secret, msg_id=message_id, body=body))

    def provider_status(self, provider_ref):
        return self._provider().status(provider_ref)

    def close(self) -> None:
        self.smtp.close()
        if self.provider is not None:
            self.provider.close()
        self.webhooks.close()
