"""The outside world: channels, webhooks, the delivery inbox, parsers, bridges (issues 3 and 7)."""
