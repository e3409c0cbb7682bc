from django.apps import AppConfig


class BridgeConfig(AppConfig):
    name = "bridge"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Bridge: email, Slack, Teams, replies, journal"

    def ready(self) -> None:
        from anymail.signals import inbound

        from bridge import checks, webhooks  # noqa: F401  (system checks)

        inbound.connect(webhooks.received, dispatch_uid="clientwindow.bridge.inbound")
