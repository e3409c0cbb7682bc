"""System checks: a capture hook an installed app needs but did not register (messaging/hooks.py).

An app lists the hook points its records need in its AppConfig's `capture_hooks`, and registers
a function of its own there in ready(). Retention needs "sealed" and "attached": without them
records are sealed with no retention record, and PostgreSQL's disposition (retention_dispose)
never disposes of what has none; nothing would fail, the records would just be kept forever.
Wake-ups are not required: every woken task also runs on a schedule.
"""

from typing import Any

from django.apps import apps
from django.core.checks import Error, register

from messaging import hooks


def _owner(func: Any) -> str:
    return str(getattr(func, "__module__", "")).split(".")[0]


@register()
def capture_hooks(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors = []
    for config in apps.get_app_configs():
        for point in getattr(config, "capture_hooks", ()):
            if config.name not in {_owner(func) for func in hooks.registered(point)}:
                errors.append(
                    Error(
                        f"{config.name} needs a '{point}' capture hook but registered none: "
                        "what capture seals would miss what that app records in the same "
                        "transaction.",
                        hint=f"Register it in {type(config).__name__}.ready() "
                        "(messaging/hooks.py).",
                        id="messaging.E001",
                    )
                )
    return errors
