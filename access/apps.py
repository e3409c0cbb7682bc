from django.apps import AppConfig


class AccessConfig(AppConfig):
    """Access rules that are not one app's: roles, headers, lockout and session policy."""

    name = "access"

    def ready(self) -> None:
        # signal receivers: the sign-in clock (sessions); LOCKED_OUT events are recorded by
        # clientwindow/account_events.py, above the access log's floor
        from django.core.signals import request_started

        from access import roles, sessions  # noqa: F401

        # a user read with one request's session is never another request's (session_store)
        request_started.connect(roles.forget_read_with_session, dispatch_uid="read_with_session")
