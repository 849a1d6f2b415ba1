"""The notifications domain in plain Python: what may be sent to whom, by which channel, when and
in which words (vocabulary, templates, default_templates, policy), and the things a message
carries (webhooks: Standard Webhooks signatures; calendar: .ics files; letters: PDF for post).
No framework, database or network: the service layer and adapters do that."""
