from django.apps import AppConfig


class AccessConfig(AppConfig):
    """Access rules that are not one app's: roles, headers, lockout and session policy."""

    name = "access"

    def ready(self) -> None:
        # signal receivers: the sign-in clock (sessions) and LOCKED_OUT events (lockout)
        from access import lockout, sessions  # noqa: F401
