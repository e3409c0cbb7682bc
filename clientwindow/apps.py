from django.apps import AppConfig


class ClientWindowConfig(AppConfig):
    name = "clientwindow"
    verbose_name = "ClientWindow"

    def ready(self) -> None:
        from clientwindow import account_events

        account_events.connect()
        account_events.register_audit()
