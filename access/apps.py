from django.apps import AppConfig


class AccessConfig(AppConfig):
    """Access rules that are not one app's: roles, headers, lockout and session policy."""

    name = "access"

    def ready(self) -> None:
        # signal receivers: the sign-in clock (sessions); LOCKED_OUT events are recorded by
        # clientwindow/account_events.py, above the access log's floor
        from access import sessions  # noqa: F401
